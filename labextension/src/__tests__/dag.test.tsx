/** The job DAG (src/components/Dag.tsx): edges, labels and the dagre layout. */
import React from 'react';
import { describe, expect, it, vi } from 'vitest';

import {
  Dag,
  DAG_DEFAULTS,
  edgePath,
  GRID_LAYOUT_ABOVE,
  IDagLayout,
  jobEdges,
  layoutDag,
  nodeBox,
  truncateLabel
} from '../components/Dag';
import { interact, render } from './render';

const GREEN_ENERGY = [
  { task_key: 'bronze', depends_on: [] },
  { task_key: 'silver', depends_on: ['bronze'] },
  { task_key: 'gold_country_totals', depends_on: ['silver'] },
  { task_key: 'gold_source_shares', depends_on: ['silver'] },
  { task_key: 'report', depends_on: ['gold_country_totals', 'gold_source_shares'] }
];

function node(layout: IDagLayout, key: string) {
  const n = layout.nodes.find(x => x.key === key);
  if (!n) {
    throw new Error(`no node ${key}`);
  }
  return n;
}

const overlap = (a: { x: number; y: number; width: number; height: number }, b: typeof a) =>
  a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

describe('labels', () => {
  it('truncateLabel cuts long labels with an ellipsis, within maxChars', () => {
    expect(truncateLabel('silver', 10)).toBe('silver');
    expect(truncateLabel('gold_country_totals', 8)).toBe('gold_…ls');
    expect(truncateLabel('gold_country_totals', 8)).toHaveLength(8);
    expect(truncateLabel('abc', 1)).toBe('a');
  });

  it('truncateLabel keeps the end, so keys that differ only at the end stay apart', () => {
    const eu = truncateLabel('reconcile_intercompany_balances_eu', 20);
    const us = truncateLabel('reconcile_intercompany_balances_us', 20);
    expect(eu).toHaveLength(20);
    expect(eu).not.toBe(us);
    expect(eu.startsWith('reconcile_')).toBe(true);
    expect(eu.endsWith('_eu')).toBe(true);
  });

  it('nodeBox sizes nodes by their label, between the minimum and maximum width', () => {
    const short = nodeBox('a');
    const medium = nodeBox('silver_clean');
    const long = nodeBox('a_task_key_that_is_much_longer_than_any_node_could_show');
    expect(short.width).toBe(DAG_DEFAULTS.minNodeWidth);
    expect(medium.width).toBeGreaterThan(short.width);
    expect(long.width).toBeLessThanOrEqual(DAG_DEFAULTS.maxNodeWidth);
    expect(long.width).toBeGreaterThan(medium.width);
    expect(long.label).toContain('…');
    expect(long.label.length * DAG_DEFAULTS.charWidth).toBeLessThanOrEqual(DAG_DEFAULTS.maxNodeWidth);
  });
});

describe('jobEdges', () => {
  it('derives the edges from depends_on when the server sent none', () => {
    expect(jobEdges(GREEN_ENERGY)).toEqual([
      { upstream: 'bronze', downstream: 'silver' },
      { upstream: 'silver', downstream: 'gold_country_totals' },
      { upstream: 'silver', downstream: 'gold_source_shares' },
      { upstream: 'gold_country_totals', downstream: 'report' },
      { upstream: 'gold_source_shares', downstream: 'report' }
    ]);
  });

  it("prefers the server's edges, dropping duplicates and edges to unknown tasks", () => {
    const edges = [
      { upstream: 'bronze', downstream: 'silver' },
      { upstream: 'bronze', downstream: 'silver' },
      { upstream: 'ghost', downstream: 'silver' },
      { upstream: 'silver', downstream: 'report' }
    ];
    expect(jobEdges(GREEN_ENERGY, edges)).toEqual([
      { upstream: 'bronze', downstream: 'silver' },
      { upstream: 'silver', downstream: 'report' }
    ]);
  });
});

describe('layoutDag', () => {
  const keys = GREEN_ENERGY.map(t => t.task_key);

  it('puts every task below its upstream tasks (top to bottom) and parallel tasks side by side', () => {
    const layout = layoutDag(keys, jobEdges(GREEN_ENERGY));
    expect(layout.nodes.map(n => n.key)).toEqual(keys);
    for (const task of GREEN_ENERGY) {
      for (const up of task.depends_on) {
        expect(node(layout, task.task_key).y).toBeGreaterThan(node(layout, up).y + node(layout, up).height - 1);
      }
    }
    const a = node(layout, 'gold_country_totals');
    const b = node(layout, 'gold_source_shares');
    expect(a.y).toBe(b.y);
    expect(overlap(a, b)).toBe(false);
  });

  it('lays out left to right with rankdir LR', () => {
    const layout = layoutDag(keys, jobEdges(GREEN_ENERGY), { rankdir: 'LR' });
    expect(node(layout, 'silver').x).toBeGreaterThan(node(layout, 'bronze').x + node(layout, 'bronze').width - 1);
    expect(node(layout, 'report').x).toBeGreaterThan(node(layout, 'gold_source_shares').x);
  });

  it('fits all nodes and edge points in its size, without overlaps', () => {
    const layout = layoutDag(keys, jobEdges(GREEN_ENERGY));
    for (const n of layout.nodes) {
      expect(n.x).toBeGreaterThanOrEqual(0);
      expect(n.y).toBeGreaterThanOrEqual(0);
      expect(n.x + n.width).toBeLessThanOrEqual(layout.width);
      expect(n.y + n.height).toBeLessThanOrEqual(layout.height);
    }
    for (let i = 0; i < layout.nodes.length; i++) {
      for (let j = i + 1; j < layout.nodes.length; j++) {
        expect(overlap(layout.nodes[i], layout.nodes[j])).toBe(false);
      }
    }
    expect(layout.edges).toHaveLength(5);
    for (const e of layout.edges) {
      expect(e.points.length).toBeGreaterThanOrEqual(2);
      // an edge starts at its upstream node and ends at its downstream node
      expect(e.points[0].y).toBeLessThanOrEqual(node(layout, e.upstream).y + node(layout, e.upstream).height + 1);
      expect(e.points[e.points.length - 1].y).toBeGreaterThanOrEqual(node(layout, e.downstream).y - 1);
    }
  });

  it('ignores self-loops and edges to unknown nodes, and handles an empty job', () => {
    const layout = layoutDag(
      ['a', 'b'],
      [
        { upstream: 'a', downstream: 'a' },
        { upstream: 'a', downstream: 'zzz' },
        { upstream: 'a', downstream: 'b' }
      ]
    );
    expect(layout.edges.map(e => `${e.upstream}->${e.downstream}`)).toEqual(['a->b']);
    expect(layoutDag([], [])).toEqual({ width: 0, height: 0, nodes: [], edges: [], kind: 'layered' });
  });
});

describe('layoutDag of a large job (the grid layout)', () => {
  // the benchmark's shape (benchmarks/scale.py make_dag_job): each task depends on up to two of the 50 before it
  function bigJob(n: number) {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    return Array.from({ length: n }, (_, i) => {
      const deps = new Set<string>();
      for (let d = 0; d < Math.min(i, 2); d++) {
        deps.add(`t${String(Math.max(0, i - 1 - Math.floor(random() * 50))).padStart(4, '0')}`);
      }
      return { task_key: `t${String(i).padStart(4, '0')}`, depends_on: [...deps] };
    });
  }

  it('draws the layered layout up to GRID_LAYOUT_ABOVE tasks and the grid beyond', () => {
    const small = bigJob(GRID_LAYOUT_ABOVE);
    expect(
      layoutDag(
        small.map(t => t.task_key),
        jobEdges(small)
      ).kind
    ).toBe('layered');
    const big = bigJob(GRID_LAYOUT_ABOVE + 1);
    expect(
      layoutDag(
        big.map(t => t.task_key),
        jobEdges(big)
      ).kind
    ).toBe('grid');
  });

  it('puts 1,000 tasks in rows below their upstream tasks, inside its size, without overlaps', () => {
    const tasks = bigJob(1000);
    const edges = jobEdges(tasks);
    const layout = layoutDag(
      tasks.map(t => t.task_key),
      edges
    );
    expect(layout.kind).toBe('grid');
    expect(layout.nodes.map(n => n.key)).toEqual(tasks.map(t => t.task_key));
    for (const task of tasks) {
      for (const up of task.depends_on) {
        expect(node(layout, task.task_key).y).toBeGreaterThan(node(layout, up).y + node(layout, up).height - 1);
      }
    }
    const rows = new Map<number, IDagLayout['nodes']>();
    for (const n of layout.nodes) {
      expect(n.x).toBeGreaterThanOrEqual(0);
      expect(n.y).toBeGreaterThanOrEqual(0);
      expect(n.x + n.width).toBeLessThanOrEqual(layout.width);
      expect(n.y + n.height).toBeLessThanOrEqual(layout.height);
      rows.set(n.y, [...(rows.get(n.y) ?? []), n]);
    }
    for (const row of rows.values()) {
      for (let i = 0; i < row.length; i++) {
        for (let j = i + 1; j < row.length; j++) {
          expect(overlap(row[i], row[j])).toBe(false);
        }
      }
    }
    expect(layout.edges).toHaveLength(edges.length);
    for (const e of layout.edges) {
      const first = e.points[0];
      const last = e.points[e.points.length - 1];
      expect(first.y).toBeCloseTo(node(layout, e.upstream).y + node(layout, e.upstream).height / 2, 0);
      expect(last.y).toBeCloseTo(node(layout, e.downstream).y + node(layout, e.downstream).height / 2, 0);
    }
  });

  it('lays out a large graph with a cycle too (an invalid job still shows its graph)', () => {
    const tasks = bigJob(GRID_LAYOUT_ABOVE + 10);
    const edges = [...jobEdges(tasks), { upstream: tasks[tasks.length - 1].task_key, downstream: tasks[0].task_key }];
    const layout = layoutDag(
      tasks.map(t => t.task_key),
      edges
    );
    expect(new Set(layout.nodes.map(n => n.key))).toEqual(new Set(tasks.map(t => t.task_key)));
    expect(layout.edges).toHaveLength(edges.length);
  });
});

describe('edgePath', () => {
  it('starts at the first point, ends at the last, curving through the middle ones', () => {
    expect(edgePath([])).toBe('');
    expect(edgePath([{ x: 1, y: 2 }])).toBe('M1,2');
    expect(
      edgePath([
        { x: 0, y: 0 },
        { x: 10, y: 20 }
      ])
    ).toBe('M0,0 L10,20');
    expect(
      edgePath([
        { x: 0, y: 0 },
        { x: 10, y: 10 },
        { x: 20, y: 0 }
      ])
    ).toBe('M0,0 Q10,10 15,5 L20,0');
    expect(
      edgePath([
        { x: 0.123, y: 1.06 },
        { x: 2, y: 3 }
      ])
    ).toBe('M0.1,1.1 L2,3');
  });
});

describe('<Dag>', () => {
  it('renders one node per task with its status in the selected run, and selects on click', () => {
    const onSelect = vi.fn();
    const statuses = { bronze: 'succeeded', silver: 'failed', gold_country_totals: 'upstream_failed' };
    const { container, unmount } = render(
      <Dag tasks={GREEN_ENERGY} statuses={statuses} selected="silver" onSelect={onSelect} />
    );
    const nodes = [...container.querySelectorAll('[data-testid=jo-dag] .jo-node')];
    expect(nodes.map(n => [n.getAttribute('data-task-key'), n.getAttribute('data-status')])).toEqual([
      ['bronze', 'succeeded'],
      ['silver', 'failed'],
      ['gold_country_totals', 'upstream_failed'],
      ['gold_source_shares', 'none'],
      ['report', 'none']
    ]);
    expect(container.querySelectorAll('.jo-edge')).toHaveLength(5);
    expect(container.querySelector('.jo-node.jo-selected')?.getAttribute('data-task-key')).toBe('silver');
    interact(() => (nodes[4] as SVGElement).dispatchEvent(new MouseEvent('click', { bubbles: true })));
    expect(onSelect).toHaveBeenCalledWith('report');
    unmount();
  });

  it('shows every node without a status when there is no run', () => {
    const { container, unmount } = render(
      <Dag tasks={GREEN_ENERGY} statuses={null} selected={null} onSelect={() => undefined} />
    );
    const statuses = [...container.querySelectorAll('.jo-node')].map(n => n.getAttribute('data-status'));
    expect(statuses).toEqual(['none', 'none', 'none', 'none', 'none']);
    unmount();
  });
});
