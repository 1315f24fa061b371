/**
 * The job's DAG as an SVG laid out by dagre: one box per task coloured by its status in the selected run,
 * edges along dagre's routed points. Clicking a box selects the task.
 */
import React, { useEffect, useId, useMemo, useState } from 'react';
import * as dagre from '@dagrejs/dagre';
import { graphStratify, grid } from 'd3-dag';
import { groupStatus, statusClass } from '../status';
import { middleEllipsis } from './common';

export interface IDagEdge {
  upstream: string;
  downstream: string;
}

export interface IDagPoint {
  x: number;
  y: number;
}

/** A laid-out node: `x`, `y` are its top-left corner; `label` is the (possibly truncated) text shown. */
export interface IDagNodeBox {
  key: string;
  label: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface IDagEdgePath extends IDagEdge {
  points: IDagPoint[];
}

export interface IDagLayout {
  width: number;
  height: number;
  nodes: IDagNodeBox[];
  edges: IDagEdgePath[];
  /** `layered`: dagre's ranks; `grid`: one task per row in topological order (d3-dag's grid, large jobs). */
  kind: 'layered' | 'grid';
}

/**
 * Above this many tasks the DAG is drawn by d3-dag's grid layout (one task per row, edges in lanes, linear
 * time: ~0.1 s for 1,000 tasks) instead of dagre's layered one, whose crossing reduction and positioning take
 * 2-20 s at 1,000 tasks and ~0.5 s at 250 on this project's 2-core machine (issue 15: a 1,000-task run's DAG
 * within 1 s).
 */
export const GRID_LAYOUT_ABOVE = 250;

export interface IDagOptions {
  rankdir: 'TB' | 'LR';
  nodesep: number;
  ranksep: number;
  margin: number;
  nodeHeight: number;
  /** Approximate width of one character of the 11 px label font. */
  charWidth: number;
  padding: number;
  minNodeWidth: number;
  maxNodeWidth: number;
}

/** Compact defaults for a narrow sidebar. */
export const DAG_DEFAULTS: IDagOptions = {
  rankdir: 'TB',
  nodesep: 12,
  ranksep: 22,
  margin: 4,
  nodeHeight: 24,
  charWidth: 6.5,
  padding: 8,
  minNodeWidth: 48,
  maxNodeWidth: 150
};

/** Shorten a label to at most `maxChars` characters, cut in the middle (`middleEllipsis`) so twins stay apart. */
export function truncateLabel(label: string, maxChars: number): string {
  return middleEllipsis(label, maxChars);
}

/** The label shown in a node and the node's width, from the task key. */
export function nodeBox(key: string, options: IDagOptions = DAG_DEFAULTS): { label: string; width: number } {
  const maxChars = Math.max(1, Math.floor((options.maxNodeWidth - 2 * options.padding) / options.charWidth));
  const label = truncateLabel(key, maxChars);
  const width = Math.min(
    options.maxNodeWidth,
    Math.max(options.minNodeWidth, Math.ceil(label.length * options.charWidth + 2 * options.padding))
  );
  return { label, width };
}

/**
 * The job's edges: its `edges` when the server sent them, else derived from each task's `depends_on`.
 * Edges whose ends are not tasks are dropped, duplicates are removed.
 */
export function jobEdges(tasks: { task_key: string; depends_on: string[] }[], edges?: IDagEdge[] | null): IDagEdge[] {
  const keys = new Set(tasks.map(t => t.task_key));
  const source = edges ?? tasks.flatMap(t => t.depends_on.map(upstream => ({ upstream, downstream: t.task_key })));
  const seen = new Set<string>();
  return source.filter(e => {
    const id = `${e.upstream}\u0000${e.downstream}`;
    if (!keys.has(e.upstream) || !keys.has(e.downstream) || seen.has(id)) {
      return false;
    }
    seen.add(id);
    return true;
  });
}

/** A task as the DAG needs it; `group`: its task group, drawn as one box while collapsed. */
export interface IDagTask {
  task_key: string;
  depends_on: string[];
  group?: string | null;
}

/**
 * The graph as drawn: each task group not in `expanded` is one node, keyed by the group's name (never a task
 * key: validation refuses that), standing for its members; edges to and from members go to it (edges inside
 * it are dropped). Returns the node keys in task order, the edges, and each group's members.
 */
export function groupedGraph(
  tasks: IDagTask[],
  edges: IDagEdge[],
  expanded: ReadonlySet<string>
): { keys: string[]; edges: IDagEdge[]; groups: Map<string, string[]> } {
  const groups = new Map<string, string[]>();
  for (const t of tasks) {
    if (t.group) {
      groups.set(t.group, [...(groups.get(t.group) ?? []), t.task_key]);
    }
  }
  const nodeOf = new Map(tasks.map(t => [t.task_key, t.group && !expanded.has(t.group) ? t.group : t.task_key]));
  const keys = [...new Set(tasks.map(t => nodeOf.get(t.task_key) ?? t.task_key))];
  const seen = new Set<string>();
  const drawn: IDagEdge[] = [];
  for (const e of edges) {
    const upstream = nodeOf.get(e.upstream) ?? e.upstream;
    const downstream = nodeOf.get(e.downstream) ?? e.downstream;
    const id = `${upstream}\u0000${downstream}`;
    if (upstream !== downstream && !seen.has(id)) {
      seen.add(id);
      drawn.push({ upstream, downstream });
    }
  }
  return { keys, edges: drawn, groups };
}

/**
 * Lay out task keys and edges: dagre's layered layout, or d3-dag's grid above {@link GRID_LAYOUT_ABOVE} tasks
 * (dagre again should the grid throw). The geometry is in SVG user units, origin at the top-left.
 */
export function layoutDag(
  keys: string[],
  edges: IDagEdge[],
  options: Partial<IDagOptions> = {},
  suffixes: Record<string, string> = {}
): IDagLayout {
  const o: IDagOptions = { ...DAG_DEFAULTS, ...options };
  if (keys.length === 0) {
    return { width: 0, height: 0, nodes: [], edges: [], kind: 'layered' };
  }
  const known = new Set(keys);
  const kept = edges.filter(e => known.has(e.upstream) && known.has(e.downstream) && e.upstream !== e.downstream);
  if (keys.length > GRID_LAYOUT_ABOVE) {
    try {
      return layoutGrid(keys, kept, o);
    } catch {
      // d3-dag refused the graph: dagre lays out anything (it breaks cycles itself)
    }
  }
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: o.rankdir, nodesep: o.nodesep, ranksep: o.ranksep, marginx: o.margin, marginy: o.margin });
  graph.setDefaultEdgeLabel(() => ({}));
  const labels = new Map<string, string>();
  for (const key of keys) {
    const { label, width } = nodeBox(suffixes[key] ? `${key} ${suffixes[key]}` : key, o);
    labels.set(key, label);
    graph.setNode(key, { width, height: o.nodeHeight });
  }
  for (const e of kept) {
    graph.setEdge(e.upstream, e.downstream);
  }
  dagre.layout(graph);
  const nodes = keys.map(key => {
    const n = graph.node(key);
    return {
      key,
      label: labels.get(key) ?? key,
      x: n.x - n.width / 2,
      y: n.y - n.height / 2,
      width: n.width,
      height: n.height
    };
  });
  const paths = kept.map(e => ({
    ...e,
    points: (graph.edge(e.upstream, e.downstream)?.points ?? []).map(p => ({ x: p.x, y: p.y }))
  }));
  const size = graph.graph();
  return {
    width: Math.ceil(size.width ?? 0),
    height: Math.ceil(size.height ?? 0),
    nodes,
    edges: paths,
    kind: 'layered'
  };
}

/** d3-dag's grid layout of `keys` and `edges` between them (no self-loops): every node in a cell as wide as the
 * widest label. Throws what d3-dag throws for a graph it refuses. */
function layoutGrid(keys: string[], edges: IDagEdge[], o: IDagOptions): IDagLayout {
  const parents = new Map<string, string[]>(keys.map(k => [k, []]));
  for (const e of edges) {
    parents.get(e.downstream)?.push(e.upstream);
  }
  const boxes = new Map(keys.map(k => [k, nodeBox(k, o)]));
  const cell = Math.max(...[...boxes.values()].map(b => b.width));
  const graph = graphStratify()(keys.map(id => ({ id, parentIds: parents.get(id) ?? [] })));
  const size = grid()
    .nodeSize([cell, o.nodeHeight])
    .gap([o.nodesep, o.nodesep / 2])(graph);
  const lr = o.rankdir === 'LR';
  const at = (x: number, y: number): IDagPoint =>
    lr ? { x: y + o.margin, y: x + o.margin } : { x: x + o.margin, y: y + o.margin };
  const nodes: IDagNodeBox[] = [];
  for (const n of graph.nodes()) {
    const key = n.data.id;
    const box = boxes.get(key) ?? { label: key, width: cell };
    const center = at(n.x, n.y);
    nodes.push({
      key,
      label: box.label,
      x: center.x - box.width / 2,
      y: center.y - o.nodeHeight / 2,
      width: box.width,
      height: o.nodeHeight
    });
  }
  const order = new Map(keys.map((k, i) => [k, i]));
  nodes.sort((a, b) => (order.get(a.key) ?? 0) - (order.get(b.key) ?? 0));
  const paths: IDagEdgePath[] = [];
  for (const link of graph.links()) {
    paths.push({
      upstream: link.source.data.id,
      downstream: link.target.data.id,
      points: link.points.map(([x, y]) => at(x, y))
    });
  }
  const width = Math.ceil((lr ? size.height : size.width) + 2 * o.margin);
  const height = Math.ceil((lr ? size.width : size.height) + 2 * o.margin);
  return { width, height, nodes, edges: paths, kind: 'grid' };
}

/** An SVG path through dagre's edge points, smoothed with quadratic curves through the segment midpoints. */
export function edgePath(points: IDagPoint[]): string {
  if (points.length === 0) {
    return '';
  }
  const f = (n: number) => Number(n.toFixed(1));
  let d = `M${f(points[0].x)},${f(points[0].y)}`;
  for (let i = 1; i < points.length - 1; i++) {
    const mx = (points[i].x + points[i + 1].x) / 2;
    const my = (points[i].y + points[i + 1].y) / 2;
    d += ` Q${f(points[i].x)},${f(points[i].y)} ${f(mx)},${f(my)}`;
  }
  const last = points[points.length - 1];
  return points.length > 1 ? `${d} L${f(last.x)},${f(last.y)}` : d;
}

/**
 * The job's DAG; `statuses` maps task keys to their status in the selected run (null: no run); `counts` adds
 * a for-each task's iteration counts to its box (`load 10/12 · 2 failed`). A task group is one box (its
 * aggregate status, `groupStatus`) until clicked; an expanded group collapses again by its button above the
 * graph, and selecting a task of a collapsed group expands it.
 */
export function Dag(props: {
  tasks: IDagTask[];
  edges?: IDagEdge[] | null;
  statuses: Record<string, string> | null;
  counts?: Record<string, string>;
  selected: string | null;
  onSelect: (taskKey: string) => void;
  rankdir?: 'TB' | 'LR';
}): JSX.Element {
  const { tasks, edges, rankdir } = props;
  const arrowId = `jo-dag-arrow-${useId().replace(/:/g, '')}`; // unique per DAG on the page
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set());
  const toggle = (group: string) =>
    setExpanded(current => {
      const next = new Set(current);
      if (!next.delete(group)) {
        next.add(group);
      }
      return next;
    });
  const selectedGroup = tasks.find(t => t.task_key === props.selected)?.group;
  useEffect(() => {
    if (selectedGroup && !expanded.has(selectedGroup)) {
      toggle(selectedGroup);
    }
  }, [selectedGroup]); // eslint-disable-line react-hooks/exhaustive-deps
  // the graph as drawn and its layout are recomputed only when the structure changes, not on every refetch
  const tasksKey = JSON.stringify([tasks.map(t => [t.task_key, t.depends_on, t.group ?? null]), edges ?? null]);
  const graph = useMemo(
    () => groupedGraph(tasks, jobEdges(tasks, edges), expanded),
    [tasksKey, expanded] // eslint-disable-line react-hooks/exhaustive-deps
  );
  const labels: Record<string, string> = { ...(props.counts ?? {}) };
  for (const [group, members] of graph.groups) {
    labels[group] = `▸ ${members.length} tasks`;
  }
  const structure = JSON.stringify([tasksKey, [...expanded], rankdir ?? 'TB', labels]);
  const layout = useMemo(
    () => {
      const started = performance.now();
      const result = layoutDag(graph.keys, graph.edges, { rankdir: rankdir ?? 'TB' }, labels);
      // a performance measure, so benchmarks/big_run.py can tell the layout from the requests and the paint
      performance.measure('jo-dag-layout', { start: started, end: performance.now() });
      return result;
    },
    [structure] // eslint-disable-line react-hooks/exhaustive-deps
  );
  if (layout.nodes.length === 0) {
    return (
      <div className="jo-dag jo-muted" data-testid="jo-dag">
        No tasks.
      </div>
    );
  }
  return (
    <div
      className={`jo-dag${layout.kind === 'grid' ? ' jo-dag-grid' : ''}`}
      data-testid="jo-dag"
      data-layout={layout.kind}
    >
      {[...graph.groups.keys()].some(g => expanded.has(g)) && (
        <div className="jo-row jo-wrap">
          {[...graph.groups.keys()]
            .filter(g => expanded.has(g))
            .map(g => (
              <button
                key={g}
                className="jo-link"
                data-testid="jo-group-collapse"
                data-group={g}
                title={`Draw task group ${g} as one box`}
                onClick={() => toggle(g)}
              >
                ▾ {g}
              </button>
            ))}
        </div>
      )}
      {layout.kind === 'grid' && (
        <div className="jo-muted">
          {layout.nodes.length} tasks, one per row in run order (a layered drawing is slow above {GRID_LAYOUT_ABOVE}).
        </div>
      )}
      <svg
        viewBox={`0 0 ${layout.width} ${layout.height}`}
        // a large graph keeps its size and scrolls; scaled to the sidebar its boxes would be dots
        style={
          layout.kind === 'grid'
            ? { width: layout.width, height: layout.height, maxWidth: 'none' }
            : { width: layout.width, maxWidth: '100%', height: 'auto' }
        }
        role="img"
        aria-label="Task graph"
      >
        <defs>
          <marker id={arrowId} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" className="jo-dag-arrow" />
          </marker>
        </defs>
        {layout.edges.map(e => (
          <path
            key={`${e.upstream}->${e.downstream}`}
            className="jo-edge"
            d={edgePath(e.points)}
            markerEnd={`url(#${arrowId})`}
            data-upstream={e.upstream}
            data-downstream={e.downstream}
          />
        ))}
        {layout.nodes.map(n => {
          const members = graph.groups.has(n.key) && !expanded.has(n.key) ? graph.groups.get(n.key) : undefined;
          const status = members
            ? groupStatus(members.map(m => props.statuses?.[m] ?? 'none'))
            : (props.statuses?.[n.key] ?? 'none');
          const select = members ? () => toggle(n.key) : () => props.onSelect(n.key);
          return (
            <g
              key={n.key}
              className={`jo-node${members ? ' jo-group' : ''}${props.selected === n.key ? ' jo-selected' : ''}`}
              data-task-key={members ? undefined : n.key}
              data-group={members ? n.key : undefined}
              data-members={members?.join(' ')}
              data-status={status}
              data-counts={props.counts?.[n.key]}
              transform={`translate(${n.x},${n.y})`}
              role="button"
              tabIndex={0}
              aria-label={`${n.key}: ${status}`}
              onClick={select}
              onKeyDown={event => {
                if (event.key === 'Enter' || event.key === ' ') {
                  event.preventDefault();
                  select();
                }
              }}
            >
              <title>{status === 'none' ? n.key : `${n.key}: ${status.replace(/_/g, ' ')}`}</title>
              <rect className={`jo-node-box ${statusClass(status)}`} width={n.width} height={n.height} rx={4} ry={4} />
              <text x={n.width / 2} y={n.height / 2} textAnchor="middle" dominantBaseline="central">
                {n.label}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
