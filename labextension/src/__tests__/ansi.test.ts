/** Tracebacks with ANSI colours (src/components/ansi.ts). */
import { describe, expect, it } from 'vitest';

import { ansiToHtml, stripAnsi, tracebackToHtml } from '../components/ansi';

const RED = '\u001b[0;31m';
const GREEN = '\u001b[0;32m';
const RESET = '\u001b[0m';

describe('ansiToHtml', () => {
  it('turns basic colours into classes and leaves no escape codes', () => {
    const html = ansiToHtml(`${RED}ValueError${RESET}: threshold is not set`);
    expect(html).not.toContain('\u001b');
    expect(html).toMatch(/<span class="ansi-red-fg">ValueError<\/span>/);
    expect(html).toContain(': threshold is not set');
  });

  it('escapes HTML in the text (a traceback is not markup)', () => {
    const html = ansiToHtml(`${RED}<img src=x onerror=alert(1)>${RESET} & "quotes"`);
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('&amp;');
  });

  it('does not carry a colour from one call to the next', () => {
    ansiToHtml(`${GREEN}unterminated`);
    expect(ansiToHtml('plain')).toBe('plain');
  });
});

describe('tracebackToHtml', () => {
  it('joins the frames with newlines', () => {
    const html = tracebackToHtml([
      `${RED}-----${RESET}`,
      `Cell ${GREEN}In[3]${RESET}, line 2`,
      `${RED}ValueError${RESET}: boom`
    ]);
    expect(html.split('\n')).toHaveLength(3);
    expect(html).toContain('ansi-green-fg');
    expect(html).not.toContain('\u001b');
  });
});

describe('stripAnsi', () => {
  it('removes colour, cursor and hyperlink (OSC 8) sequences only', () => {
    expect(stripAnsi(`${RED}ValueError${RESET}: x`)).toBe('ValueError: x');
    expect(stripAnsi('\u001b[1;38;5;208mbold\u001b[22m\u001b[2K')).toBe('bold');
    expect(stripAnsi('\u001b]8;;file:///a.py\u0007a.py\u001b]8;;\u0007 line 3')).toBe('a.py line 3');
    expect(stripAnsi('\u001b]8;;http://x\u001b\\link\u001b]8;;\u001b\\')).toBe('link');
    expect(stripAnsi('no codes [31m here')).toBe('no codes [31m here');
  });
});
