/**
 * ANSI escape codes (kernel tracebacks) to HTML, with `ansi_up`. The HTML is escaped (ansi_up's default), and
 * the 16 basic colours are emitted as `ansi-<colour>-fg` / `ansi-<colour>-bg` classes that style/base.css maps to
 * theme variables, so tracebacks stay readable in light and dark themes (256 / true colours stay inline styles).
 */
import { AnsiUp } from 'ansi_up';

/** Convert text with ANSI escape codes to safe HTML (text is HTML-escaped, colours become classes). */
export function ansiToHtml(text: string): string {
  const converter = new AnsiUp(); // a fresh converter: ansi_up keeps colour state between calls
  converter.use_classes = true;
  return converter.ansi_to_html(text);
}

/** A traceback as stored in an attempt error (one string per frame, each possibly multi-line) to HTML. */
export function tracebackToHtml(traceback: string[]): string {
  return ansiToHtml(traceback.join('\n'));
}

// CSI sequences (colours, cursor moves) and OSC sequences (e.g. hyperlinks) terminated by BEL or ESC \.
// eslint-disable-next-line no-control-regex -- ESC and BEL are what the pattern matches
const ANSI_PATTERN = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)/g;

/** Remove ANSI escape sequences, for plain text (titles, one-line messages). */
export function stripAnsi(text: string): string {
  return text.replace(ANSI_PATTERN, '');
}
