/** Placeholder until the CLI lands. */
export function main(): void {
  process.stderr.write('not implemented yet\n');
  process.exitCode = 1;
}
