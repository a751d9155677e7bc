import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Whether this process's group is the foreground process group of its controlling terminal,
 * i.e. whether a Ctrl-C or Ctrl-\ typed there is delivered by the kernel to this process
 * AND to a child that shares its process group. Answers false when there is no controlling
 * terminal, and when it cannot tell (so the caller errs on the side of forwarding).
 */
export function ownsTerminalForeground(): boolean {
  try {
    if (process.platform === 'linux') {
      // /proc/self/stat: pid (comm) state ppid pgrp session tty_nr tpgid ...; comm may hold
      // spaces and parentheses, so fields are counted from the last ')'.
      const stat = readFileSync('/proc/self/stat', 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pgrp = Number(fields[2]);
      const tpgid = Number(fields[5]);
      return tpgid > 0 && tpgid === pgrp;
    }
    if (process.platform === 'win32') return false;
    const ps = spawnSync('ps', ['-o', 'pgid=,tpgid=', '-p', String(process.pid)], {
      encoding: 'utf8',
      timeout: 2000,
    });
    const [pgid, tpgid] = ps.stdout.trim().split(/\s+/).map(Number);
    return pgid !== undefined && tpgid !== undefined && tpgid > 0 && tpgid === pgid;
  } catch {
    return false;
  }
}
