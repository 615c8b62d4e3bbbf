/** Print a usage error the way CLI users expect: what was wrong, then how to call it. Exit code 2. */
export function usageError(message: string, usage: string): number {
  process.stderr.write(`sandbox-operator: ${message}\n\n${usage}`);
  return 2;
}
