// Join two sockets both ways until both directions are done or either fails.
// Half-close is forwarded (a client that shuts down its write side still gets
// the whole response), which is why the sockets are opened with allowHalfOpen.
import type { Duplex } from "node:stream";

export function splice(a: Duplex, b: Duplex): void {
  const destroyBoth = () => {
    a.destroy();
    b.destroy();
  };
  a.on("error", destroyBoth);
  b.on("error", destroyBoth);
  a.on("close", () => b.destroy());
  b.on("close", () => a.destroy());
  a.pipe(b);
  b.pipe(a);
}
