/** h. A text file (.py) edited by two browser contexts at once. */
import { expect, fileEditor, test, typeAtEnd } from './helpers/lab';
import { readOnDisk } from './helpers/server';

test('h. a .py file edited by two contexts @both', async ({ lab }) => {
  const docPath = await lab.newTextFile('h-text', 'py', 'def greet():\n    return "hi"\n');
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);
  for (const page of [alice, bob]) {
    await expect(fileEditor(page)).toContainText('return "hi"');
  }

  await typeAtEnd(alice, fileEditor(alice), 'print(greet())  # alice\n');
  await expect(fileEditor(bob)).toContainText('print(greet())  # alice');

  await typeAtEnd(bob, fileEditor(bob), '# bob was here\n');
  await expect(fileEditor(alice)).toContainText('# bob was here');

  // Both see the same text, in the same order.
  const expected = ['def greet():', '    return "hi"', 'print(greet())  # alice', '# bob was here'];
  for (const page of [alice, bob]) {
    await expect
      .poll(async () => (await fileEditor(page).locator('.cm-line').allInnerTexts()).slice(0, 4))
      .toEqual(expected);
  }

  // The server saves everybody's edits to disk (Ctrl+S is scenario e's business).
  await expect.poll(() => readOnDisk(docPath)).toBe(expected.join('\n') + '\n');
});
