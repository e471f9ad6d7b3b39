// The Findings panel above the heatmap: what the rules found in the
// selected run (the `findings` route, through the model).  A one-line count
// when there is nothing ("No findings"), else the count and a list, most
// severe first.  Each entry is a button (click, Enter or Space): it shows
// the heatmap that shows the finding (the server's `views` table), outlines
// its rows and step range there and puts its id in the URL (`finding`);
// choosing it again clears that.  Layer names and messages are user data
// and go in as text only.

import { h } from "./dom.js";
import { SEVERITY_LABEL, findingId, marksOf, ordered, severityOf, stepRangeText, summaryText, viewOf } from "./findings.js";

export class FindingsPanel {
  // `app`: the controller (state, model, card, set(changes, options)).
  constructor(app, main, before) {
    this.app = app;
    this.run = null; // whose findings are shown
    this.answer = null;
    this.list = [];
    this.expanded = true;
    this.summary = h("span", { class: "ss-findings-summary", id: "ss-findings-summary", role: "status" });
    this.toggle = h("button", {
      type: "button",
      class: "ss-button ss-findings-toggle",
      "aria-controls": "ss-findings-list",
      onclick: () => this.setExpanded(!this.expanded),
    });
    this.items = h("ul", { class: "ss-findings-list", id: "ss-findings-list", onscroll: () => this._edges() });
    this.root = h(
      "section",
      { class: "ss-card ss-findings", "aria-labelledby": "ss-findings-title", hidden: true },
      h(
        "div",
        { class: "ss-findings-head" },
        h("h3", { class: "ss-findings-title", id: "ss-findings-title", text: "Findings" }),
        this.summary,
        this.toggle
      ),
      this.items
    );
    main.insertBefore(this.root, before);
    this.setExpanded(true);
  }

  // Show the findings of `run` (null: no run, no panel).  The heatmap gets
  // its marks when they arrive, or with its next draw if it is not drawn yet.
  async show(run) {
    this.root.hidden = !run;
    if (run !== this.run) {
      this.run = run;
      this.answer = null;
      this.list = [];
      this._render("Looking for findings\u2026");
    }
    if (!run) return;
    let answer;
    try {
      answer = await this.app.model.findings(run);
    } catch (e) {
      if (run === this.run && !this.answer) this._render(`Findings unavailable: ${e.message}`);
      return;
    }
    if (run !== this.run || answer === this.answer) return;
    const same = this.answer && JSON.stringify(this.answer.findings) === JSON.stringify(answer.findings);
    this.answer = answer;
    if (same) return;
    this.list = ordered(answer.findings || []);
    const st = this.app.state;
    if (st.finding && !this.list.some((f) => findingId(f) === st.finding)) {
      this.app.set({ finding: "" }, { refetch: false, redraw: false });
    }
    this._render();
    this.app.card.redrawMarks(run, this.marks(run));
  }

  // The heatmap's marks of `run` (findings.js marksOf), null until known.
  marks(run) {
    return run === this.run && this.answer ? marksOf(this.list, this.app.state.finding) : null;
  }

  setExpanded(expanded) {
    this.expanded = expanded;
    this.toggle.textContent = expanded ? "Hide" : "Show";
    this.toggle.setAttribute("aria-expanded", String(expanded));
    this.items.hidden = !expanded || !this.list.length;
    this._edges();
  }

  // Show `finding`'s heatmap and outline it (or clear it if it is the one shown).
  choose(finding) {
    const st = this.app.state;
    const id = findingId(finding);
    const stats = (this.app.model.tags[this.run] || {}).stats || {};
    const view = st.finding === id ? null : viewOf(finding, this.answer.views, stats, st.stat);
    const changes = { finding: st.finding === id ? "" : id };
    const refetch = !!view && (view.metric !== st.metric || view.stat !== st.stat);
    this.app.set(refetch ? { ...changes, ...view } : changes, { refetch, redraw: false });
    this._markPressed();
    if (!refetch) this.app.card.markFinding(this.run, this.marks(this.run).highlight);
  }

  _render(note) {
    const list = this.list;
    this.summary.textContent = note || summaryText(list);
    this.root.classList.toggle("ss-findings-none", !list.length);
    this.toggle.hidden = !list.length;
    this.items.hidden = !this.expanded || !list.length;
    const selected = this.app.state.finding;
    this.items.replaceChildren(...list.map((f) => h("li", {}, this._entry(f, findingId(f) === selected))));
    const chosen = this.items.querySelector('[aria-pressed="true"]');
    if (chosen) this.items.scrollTop = chosen.offsetTop; // a link's finding is in view (the list is its offsetParent)
    this._edges();
  }

  // Fade the list's edges where entries are scrolled out of sight (a cut
  // entry then reads as "more this way").
  _edges() {
    const l = this.items;
    l.classList.toggle("ss-more-above", l.scrollTop > 0);
    l.classList.toggle("ss-more-below", l.scrollTop + l.clientHeight < l.scrollHeight - 1);
  }

  // Entries keep their nodes (and the keyboard focus) when only the choice changes.
  _markPressed() {
    const selected = this.app.state.finding;
    for (const b of this.items.querySelectorAll(".ss-finding")) b.setAttribute("aria-pressed", String(b.dataset.id === selected));
  }

  _entry(f, pressed) {
    const severity = severityOf(f);
    const where = f.layer === null || f.layer === undefined ? "whole run" : f.layer;
    return h(
      "button",
      {
        type: "button",
        class: `ss-finding ss-sev-${severity}`,
        "aria-pressed": String(pressed),
        "data-id": findingId(f),
        title: `Show ${f.kind} on the heatmap`,
        onclick: () => this.choose(f),
      },
      h("span", { class: "ss-finding-sev", text: SEVERITY_LABEL[severity] }),
      h("span", { class: "ss-finding-kind", text: f.kind }),
      h("span", { class: "ss-finding-layer" + (f.layer ? "" : " ss-whole"), text: where }),
      h("span", { class: "ss-finding-steps", text: stepRangeText(f) }),
      h("span", { class: "ss-finding-message", text: f.message })
    );
  }

  // What the panel shows, for the tests.
  snapshot() {
    return {
      run: this.run,
      hidden: this.root.hidden,
      summary: this.summary.textContent,
      expanded: this.expanded,
      selected: this.app.state.finding,
      findings: this.list.map((f) => ({ ...f, id: findingId(f) })),
    };
  }
}
