import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback between the server and a real Postgres, that can be told to stop
 * forwarding without closing anything: the black hole of a network partition or a frozen
 * host, where connections stay open and bytes vanish. Both directions are dropped while it is
 * black-holed; new connections are accepted (the kernel completes the handshake) but nothing
 * reaches Postgres.
 */
export interface TcpProxy {
  readonly port: number;
  /** Drop every byte from now on, in both directions, keeping every socket open. */
  blackHole(): void;
  /** Forward again (bytes dropped meanwhile are gone, as on a real partition). */
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let dropping = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(target);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      // A reset on one side ends the pair; errors are expected when the server gives up.
      socket.on('error', () => {});
    }
    client.on('data', (chunk) => {
      if (!dropping) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!dropping) client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the proxy has no port');
  return {
    port: address.port,
    blackHole: () => {
      dropping = true;
    },
    resume: () => {
      dropping = false;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
