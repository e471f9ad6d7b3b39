// The drill-downs under the heatmap: the run's, and when comparing the
// other run's for the same layer (made on first use, removed when the
// comparison ends), so both runs' series sit one above the other.

import { DrillDown } from "./drilldown.js";

export class DrillDowns {
  // `options`: DrillDown's {model, onStep, onClose}.
  constructor(container, options) {
    this.container = container;
    this.options = options;
    this.main = new DrillDown(container, options);
    this.other = null;
  }

  get all() {
    return this.other ? [this.main, this.other] : [this.main];
  }

  get open() {
    return this.main.open;
  }

  // Open `layer` at `step` for the selection's run, and for its other run when comparing.
  open(st, layer, step, width) {
    this.main.openLayer(st, layer, step, width);
    if (st.compare !== "off" && st.run2) {
      this.other = this.other || new DrillDown(this.container, this.options);
      this.other.openLayer({ ...st, run: st.run2 }, layer, step, width);
    } else if (this.other) {
      this.other.close();
      this.other.root.remove();
      this.other = null;
    }
  }

  close() {
    for (const d of this.all) d.close();
  }

  redraw(width) {
    for (const d of this.all) d.redraw(width);
  }
}
