// Whether a sandbox's port serves again after a resume (used by the SDK and
// the gateway before they make a call that resumed it).
import net from "node:net";

/**
 * Whether something serves host:port: the connection opens and is not closed
 * at once. A port published by Docker's userland proxy accepts connections
 * even while nothing listens behind it, and closes them right away; a server
 * waiting for a request keeps them open (one that greets first sends data).
 */
export function answers(host: string, port: number, settleMs = 150): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let timer: NodeJS.Timeout | undefined;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.once("connect", () => {
      s.setTimeout(0);
      timer = setTimeout(() => done(true), settleMs);
    });
    s.once("data", () => done(true));
    s.once("end", () => done(false));
    s.once("close", () => done(false));
    s.once("error", () => done(false));
  });
}
