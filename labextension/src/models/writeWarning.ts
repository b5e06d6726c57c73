/**
 * Reads the container kernel's warnings about writes outside /workspace
 * (printed by ds01_jupyter/kernels/hook.py) out of a stream output.
 */
const WARNING = /ds01 warning: (.+?) is outside \/workspace/g;

export function parseWriteWarnings(text: string): string[] {
  const out: string[] = [];
  for (const match of text.matchAll(WARNING)) {
    out.push(match[1]);
  }
  return out;
}
