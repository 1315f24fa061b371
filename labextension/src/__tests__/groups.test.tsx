/** Task groups in the DAG (src/components/Dag.tsx: groupedGraph, the collapsible box) and groupStatus (status.ts). */
import React from 'react';
import { describe, expect, it, vi } from 'vitest';

import { Dag, groupedGraph, jobEdges } from '../components/Dag';
import { groupStatus } from '../status';
import { interact, render } from './render';

const TASKS = [
  { task_key: 'silver', depends_on: [] },
  { task_key: 'check', depends_on: ['silver'] },
  { task_key: 'gold_totals', depends_on: ['check'], group: 'gold' },
  { task_key: 'gold_shares', depends_on: ['check', 'gold_totals'], group: 'gold' },
  { task_key: 'report', depends_on: ['gold_totals', 'gold_shares'] }
];

describe('groupedGraph', () => {
  it('draws a collapsed group as one node with the edges of its members', () => {
    const g = groupedGraph(TASKS, jobEdges(TASKS), new Set());
    expect(g.keys).toEqual(['silver', 'check', 'gold', 'report']);
    expect(g.edges).toEqual([
      { upstream: 'silver', downstream: 'check' },
      { upstream: 'check', downstream: 'gold' },
      { upstream: 'gold', downstream: 'report' }
    ]);
    expect(g.groups.get('gold')).toEqual(['gold_totals', 'gold_shares']);
  });

  it('draws an expanded group as its tasks', () => {
    const g = groupedGraph(TASKS, jobEdges(TASKS), new Set(['gold']));
    expect(g.keys).toEqual(TASKS.map(t => t.task_key));
    expect(g.edges).toHaveLength(6);
  });
});

describe('groupStatus', () => {
  it('is the most telling status of its tasks', () => {
    expect(groupStatus([])).toBe('none');
    expect(groupStatus(['none', 'none'])).toBe('none');
    expect(groupStatus(['succeeded', 'running'])).toBe('running');
    expect(groupStatus(['succeeded', 'failed', 'upstream_failed'])).toBe('failed');
    expect(groupStatus(['timed_out', 'succeeded'])).toBe('failed');
    expect(groupStatus(['upstream_failed', 'upstream_failed'])).toBe('upstream_failed');
    expect(groupStatus(['succeeded', 'skipped'])).toBe('succeeded');
    expect(groupStatus(['skipped', 'skipped'])).toBe('skipped');
    expect(groupStatus(['succeeded', 'pending'])).toBe('running');
    expect(groupStatus(['pending', 'pending'])).toBe('pending');
  });
});

describe('<Dag> with a task group', () => {
  it('shows the group collapsed with its aggregate status, expands on click and collapses by its button', () => {
    const onSelect = vi.fn();
    const statuses = { silver: 'succeeded', check: 'succeeded', gold_totals: 'succeeded', gold_shares: 'failed' };
    const { container, unmount } = render(
      <Dag tasks={TASKS} statuses={statuses} selected={null} onSelect={onSelect} />
    );
    const group = () => container.querySelector('.jo-node.jo-group[data-group=gold]');
    expect(group()?.getAttribute('data-status')).toBe('failed');
    expect(group()?.getAttribute('data-members')).toBe('gold_totals gold_shares');
    expect(group()?.querySelector('text')?.textContent).toBe('gold ▸ 2 tasks');
    expect(container.querySelector('.jo-node[data-task-key=gold_totals]')).toBeNull();

    interact(() => group()?.dispatchEvent(new MouseEvent('click', { bubbles: true })));
    expect(onSelect).not.toHaveBeenCalled();
    expect(group()).toBeNull();
    expect(container.querySelector('.jo-node[data-task-key=gold_shares]')?.getAttribute('data-status')).toBe('failed');

    const collapse = container.querySelector('[data-testid=jo-group-collapse][data-group=gold]') as HTMLElement;
    interact(() => collapse.click());
    expect(group()).not.toBeNull();
    unmount();
  });

  it('expands the group of the selected task', () => {
    const { container, unmount } = render(
      <Dag tasks={TASKS} statuses={null} selected="gold_shares" onSelect={() => undefined} />
    );
    expect(container.querySelector('.jo-node.jo-selected')?.getAttribute('data-task-key')).toBe('gold_shares');
    unmount();
  });
});
