/**
 * p. ipywidgets in a notebook loaded from disk (not signed): a slider Alice displays renders
 * as a widget for her and for Bob at once, and for Carol who opens the notebook later; a
 * value set in the kernel moves it in every page.
 */
import * as fs from 'fs';
import * as path from 'path';
import { cell, expect, outputArea, runCell, test, waitForKernelIdle } from './helpers/lab';
import { notebookJSON, notebooksDir } from './helpers/server';

const SLIDER = 'import ipywidgets as w\nslider = w.IntSlider(value=3, description="level")\nslider';

test('p. a widget of a server-side run renders for everyone, late joiners included @both', async ({ lab }) => {
  const docPath = `p-widgets-${Date.now().toString(36)}.ipynb`;
  fs.writeFileSync(path.join(notebooksDir(), docPath), JSON.stringify(notebookJSON([SLIDER, 'slider.value = 7'])));
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);
  await waitForKernelIdle(alice);
  await runCell(alice, 0);
  for (const page of [alice, bob]) {
    await expect(outputArea(page, 0).locator('.widget-slider')).toBeVisible();
    await expect(outputArea(page, 0)).not.toContainText('IntSlider(value=3');
    await expect(outputArea(page, 0).locator('.widget-readout')).toHaveText('3');
  }
  const carol = await lab.open('bob', docPath, 'late-joiner');
  await expect(outputArea(carol, 0).locator('.widget-slider')).toBeVisible();
  await runCell(alice, 1);
  for (const page of [alice, bob, carol]) {
    await expect(outputArea(page, 0).locator('.widget-readout')).toHaveText('7');
  }
  await expect(cell(carol, 0)).toContainText('level');
  await lab.screenshot(carol, 'late-joiner-sees-the-slider');
});
