// The timeline: a waterfall of steps by start and duration, under the lanes of the workers that held
// the execution. A crash shows as a claim ending in an expired lease, and the next worker's claim
// replaying the steps recorded before it (marked ↻) instead of running them again.
import { duration, h } from "./util.js";

const PALETTE = ["#2563eb", "#d946ef", "#f97316", "#0d9488", "#7c3aed", "#dc2626", "#65a30d", "#0891b2"];

export function workerColors(model) {
  const colors = new Map();
  for (const c of model.claims) if (!colors.has(c.worker)) colors.set(c.worker, PALETTE[colors.size % PALETTE.length]);
  return colors;
}

function depthOf(model, step) {
  let d = 0;
  let p = step.parent;
  while (p && model.byKey.has(p) && d < 20) { d += 1; p = model.byKey.get(p).parent; }
  return d;
}

export function drawTimeline(container, model, onSelect) {
  const span = Math.max(model.t1 - model.t0, 1);
  const pct = (t) => `${(((t - model.t0) / span) * 100).toFixed(3)}%`;
  const width = (a, b) => `${Math.max(((b - a) / span) * 100, 0.25).toFixed(3)}%`;
  const colors = workerColors(model);
  const ticks = h("div.tl-axis", {}, [0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { style: `left:${f * 100}%` }, duration(span * f))));
  const lanes = h("div.tl-lanes", { testid: "timeline-workers" });
  model.claims.forEach((c, i) => {
    const end = c.end ?? model.t1;
    const color = colors.get(c.worker);
    const replayed = model.active.filter((s) => model.info.get(s).replayedBy.includes(c)).length;
    lanes.append(h("div.tl-row.lane", { testid: "timeline-claim", dataset: { worker: c.worker, epoch: c.epoch } },
      h("div.tl-label", { title: c.worker }, h("span.dot", { style: `background:${color}` }), `worker ${c.worker}`, h("span.muted", {}, ` · claim ${i + 1}, epoch ${c.epoch}`)),
      h("div.tl-track", {},
        h("div.tl-bar.claim", { style: `left:${pct(c.start)};width:${width(c.start, end)};background:${color}33;border-color:${color}`,
          title: `${c.worker}, epoch ${c.epoch}: ${duration(end - c.start)}${c.ended ? `, ended: ${c.ended}` : ", holds the lease"}` }),
        h("span.tl-note", { style: `left:${pct(end)}` }, c.ended ? (c.ended.startsWith("lease expired") ? "✖ lease expired" : c.ended) : "running",
          replayed ? ` · replayed ${replayed} step${replayed === 1 ? "" : "s"}` : ""),
      ),
    ));
  });
  const rows = h("div.tl-steps", { testid: "timeline-steps" });
  const ordered = [...model.steps].sort((a, b) => a.seq - b.seq);
  for (const s of ordered) {
    const info = model.info.get(s);
    const end = info.end ?? (s.status === "suspended" || s.status === "started" ? model.t1 : info.start);
    const color = info.claim ? colors.get(info.claim.worker) : "#6b7280";
    const marks = [];
    if (info.replayedBy.length) marks.push(h("span.mark.replay", { testid: "replayed", title: `replayed by ${info.replayedBy.map((c) => `${c.worker} (epoch ${c.epoch})`).join(", ")}: its recorded result was returned, the call was not made again` }, `↻ ${info.replayedBy.length}`));
    if (s.epoch === 0) marks.push(h("span.mark", { title: "copied from the execution this one was forked from" }, "fork"));
    if (info.inDoubt) marks.push(h("span.mark.warn", { title: "started and never finished: the worker died inside it" }, "in doubt"));
    if (info.retried) marks.push(h("span.mark.warn", { title: "run again after its first attempt was in doubt" }, `attempt ${s.attempt}`));
    if (s.superseded) marks.push(h("span.mark", { title: "the re-run took another path: kept as history" }, "divergent"));
    if (s.status === "failed") marks.push(h("span.mark.bad", {}, "failed"));
    rows.append(h("div.tl-row.step", { testid: "timeline-step", dataset: { key: s.key, epoch: s.epoch, worker: info.claim ? info.claim.worker : "" }, onclick: () => onSelect(s.key) },
      h("div.tl-label", { style: `padding-left:${8 + depthOf(model, s) * 14}px`, title: `${s.kind} · ${s.name}` }, h("span.kind", {}, s.kind), ` ${s.name}`),
      h("div.tl-track", {},
        h("div.tl-bar", { class: `tl-bar s-${s.status}${s.superseded ? " divergent" : ""}`, style: `left:${pct(info.start)};width:${width(info.start, end)};background:${color}` ,
          title: `${duration(info.duration)} · ${info.worker}` }),
        h("span.tl-note", { style: `left:${pct(end)}` }, duration(info.duration), " ", marks)),
    ));
  }
  container.append(h("div.timeline", {},
    h("div.tl-row.head", {}, h("div.tl-label", {}, `${model.claims.length} claim${model.claims.length === 1 ? "" : "s"} · ${model.steps.length} steps`), h("div.tl-track", {}, ticks)),
    lanes, rows));
}
