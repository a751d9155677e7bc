/**
 * Output conventions: data goes to stdout (JSON with --json), everything meant for a human
 * (progress, notices, confirmations) goes to stderr, so `crate ... > file` captures data only.
 * Colour only when the stream is a TTY and NO_COLOR is unset.
 */
export interface OutputStreams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export class Output {
  readonly #streams: OutputStreams;
  readonly json: boolean;
  readonly #colourErr: boolean;
  readonly #colourOut: boolean;

  constructor(streams: OutputStreams, options: { json: boolean; env: NodeJS.ProcessEnv }) {
    this.#streams = streams;
    this.json = options.json;
    const allowed = options.env.NO_COLOR === undefined && options.env.TERM !== 'dumb';
    this.#colourErr = allowed && streams.stderr.isTTY === true;
    this.#colourOut = allowed && streams.stdout.isTTY === true;
  }

  /** A line of data on stdout. */
  data(text: string): void {
    this.#streams.stdout.write(text.endsWith('\n') ? text : text + '\n');
  }

  /**
   * Raw bytes on stdout, unchanged (binary secret values). The stream may hold on to the
   * buffer until it is flushed, so it gets a copy: the caller zeroes its own afterwards.
   */
  raw(bytes: Uint8Array | string): void {
    this.#streams.stdout.write(typeof bytes === 'string' ? bytes : Buffer.from(bytes));
  }

  /** A value as JSON on stdout. */
  printJson(value: unknown): void {
    this.data(JSON.stringify(value, null, 2));
  }

  /** A message for the human, on stderr. */
  info(text: string): void {
    this.#streams.stderr.write(text + '\n');
  }

  success(text: string): void {
    this.info(this.#paint(this.#colourErr, '32', '✓') + ' ' + text);
  }

  warn(text: string): void {
    this.info(this.#paint(this.#colourErr, '33', 'warning:') + ' ' + text);
  }

  #paint(enabled: boolean, code: string, text: string): string {
    return enabled ? `\u001b[${code}m${text}\u001b[0m` : text;
  }

  /** Prints rows as aligned columns on stdout. */
  table(headers: string[], rows: string[][]): void {
    const widths = headers.map((header, column) =>
      Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
    );
    const line = (cells: string[]): string =>
      cells
        .map((cell, column) =>
          column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0),
        )
        .join('  ')
        .trimEnd();
    this.data(this.#paint(this.#colourOut, '1', line(headers)));
    for (const row of rows) this.data(line(row));
  }
}
