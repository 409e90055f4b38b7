"use strict";
// The dashboard page. The server embeds the dashboard's spec (filters, panels, layout and a Vega-Lite
// spec per charted panel); this script builds the filter controls and one tile per panel, then asks
// `…/data` for every panel's rows, again whenever a filter changes. KPI tiles and tables are plain HTML;
// charts are drawn by vega-embed, served by the app, as SVG.
(() => {
  const root = document.getElementById("dashboard");
  const { dashboard, charts } = JSON.parse(document.getElementById("dashboard-spec").textContent);
  const statusLine = document.getElementById("status");
  const filterBar = document.getElementById("filters");
  const grid = document.getElementById("panels");

  const values = {}; // filter name -> a dropdown's value, or a date range's {from, to}
  const dropdowns = {}; // filter name -> its <select>
  const tiles = []; // per panel: the element its content is drawn into
  const embeds = []; // per panel: the vega-embed result to finalize before drawing again
  let latest = 0; // answers arrive in any order: only the newest request's is drawn

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  }

  function showStatus(text, failed = false) {
    statusLine.textContent = text;
    statusLine.classList.toggle("failed", failed);
  }

  function buildFilters() {
    for (const filter of dashboard.filters) {
      if (filter.kind === "dropdown") {
        const select = element("select", { name: filter.name }, element("option", { value: "" }, "All"));
        select.addEventListener("change", () => setFilter(filter.name, select.value || null));
        dropdowns[filter.name] = select;
        filterBar.append(element("label", { class: "filter" }, filter.label, select));
      } else if (filter.kind === "date_range") {
        const from = element("input", { type: "date", name: `${filter.name}_from`, "aria-label": "from" });
        const to = element("input", { type: "date", name: `${filter.name}_to`, "aria-label": "to" });
        const update = () => {
          const range = {};
          if (from.value) range.from = from.value;
          if (to.value) range.to = to.value;
          setFilter(filter.name, Object.keys(range).length ? range : null);
        };
        from.addEventListener("change", update);
        to.addEventListener("change", update);
        const inputs = element("span", { class: "inputs" }, from, "–", to);
        filterBar.append(element("div", { class: "filter", role: "group", "aria-label": filter.label },
          filter.label, inputs));
      }
    }
    filterBar.addEventListener("submit", (event) => event.preventDefault());
  }

  function setFilter(name, value) {
    if (value === null) delete values[name];
    else values[name] = value;
    const select = dropdowns[name];
    if (select && select.value !== (value ?? "")) {
      ensureOption(select, value);
      select.value = value ?? "";
    }
    refresh();
  }

  function ensureOption(select, value) {
    if (value !== null && ![...select.options].some((option) => option.value === value)) {
      select.append(element("option", { value }, value));
    }
  }

  function updateOptions(options) {
    for (const [name, select] of Object.entries(dropdowns)) {
      const chosen = select.value;
      select.replaceChildren(element("option", { value: "" }, "All"),
        ...(options[name] || []).map((v) => element("option", { value: String(v) }, String(v))));
      ensureOption(select, chosen || null);
      select.value = chosen;
    }
  }

  function buildPanels() {
    const columns = dashboard.layout.columns;
    grid.style.gridTemplateColumns = `repeat(${columns}, minmax(0, 1fr))`;
    grid.style.gap = `${dashboard.layout.gap}px`;
    dashboard.panels.forEach((panel, i) => {
      const body = element("div", { class: "panel-body" });
      const maxHeight = panel.grid && panel.grid.maxHeight;
      if (maxHeight) {
        body.style.maxHeight = typeof maxHeight === "number" ? `${maxHeight}px` : maxHeight;
        body.style.overflow = "auto";
      }
      const tile = element("article", { class: `panel panel-${panel.kind}`, "data-panel": i },
        element("h2", {}, panel.title || panel.kind), body);
      const span = panel.grid && panel.grid.span;
      if (span) tile.style.gridColumn = `span ${Math.min(span, columns)}`;
      grid.append(tile);
      tiles.push(body);
      embeds.push(null);
    });
  }

  async function refresh() {
    const ticket = ++latest;
    root.dataset.state = "loading";
    showStatus("Loading…");
    let answer;
    try {
      const response = await fetch(root.dataset.dataUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ filters: values }),
      });
      if (response.status === 401) {
        window.location.assign(root.dataset.loginUrl);
        return;
      }
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
      answer = body;
    } catch (error) {
      if (ticket !== latest) return;
      root.dataset.state = "failed";
      showStatus(`The data could not be loaded: ${error.message}`, true);
      return;
    }
    if (ticket !== latest) return;
    updateOptions(answer.filters || {});
    await Promise.all(answer.panels.map((result, i) => drawPanel(i, asObjects(result), ticket)));
    if (ticket !== latest) return;
    root.dataset.state = "ready";
    // A dropdown whose options query failed has an empty list: say why, in the status line.
    const optionErrors = Object.entries(answer.filter_errors || {}).map(([name, reason]) => {
      const filter = dashboard.filters.find((f) => f.name === name);
      return `The options of ${filter ? filter.label : name} could not be loaded: ${reason}`;
    });
    showStatus(optionErrors.join(" "), optionErrors.length > 0);
  }

  // Rows may come as lists in `columns` order or as objects keyed by column: drawn as objects.
  function asObjects(result) {
    const rows = (result.rows || []).map((row) =>
      Array.isArray(row) ? Object.fromEntries(result.columns.map((c, j) => [c, row[j]])) : row);
    return { ...result, rows };
  }

  async function drawPanel(i, result, ticket) {
    const panel = dashboard.panels[i];
    const body = tiles[i];
    if (embeds[i]) embeds[i].finalize();
    embeds[i] = null;
    body.replaceChildren();
    if (result.error) {
      body.append(element("p", { class: "panel-error", role: "alert" }, result.error));
    } else if (panel.kind === "kpi") {
      drawKpi(body, panel, result);
    } else if (!charts[i]) {
      drawTable(body, panel, result);
    } else if (!result.rows.length) {
      body.append(element("p", { class: "empty" }, "No rows."));
    } else {
      await drawChart(body, i, result, ticket);
    }
  }

  function drawKpi(body, panel, result) {
    if (!result.columns.includes(panel.value)) {
      body.append(element("p", { class: "panel-error", role: "alert" },
        `The query has no column \`${panel.value}\`.`));
      return;
    }
    const value = result.rows.length ? result.rows[0][panel.value] ?? null : null;
    body.append(element("p", { class: "kpi-value", "data-value": value === null ? "" : String(value) },
      formatValue(value, panel)));
  }

  function formatValue(value, panel) {
    if (value === null || value === undefined) return "—";
    const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
    if (panel.format === "raw" || typeof number !== "number" || Number.isNaN(number)) return String(value);
    if (panel.format === "currency") {
      const currency = (panel.currency || "USD").toUpperCase();
      try {
        return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(number);
      } catch {
        return `${currency} ${formatNumber(number)}`; // not an ISO 4217 code Intl knows
      }
    }
    return formatNumber(number);
  }

  function formatNumber(number) {
    return new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(number);
  }

  function drawTable(body, panel, result) {
    const pageSize = panel.page_size || 50;
    const tbody = element("tbody");
    const table = element("table", { class: "rows" },
      element("thead", {}, element("tr", {}, ...result.columns.map((c) => element("th", { scope: "col" }, c)))),
      tbody);
    body.append(element("div", { class: "table-wrap" }, table));
    if (!result.rows.length) {
      body.append(element("p", { class: "empty" }, "No rows."));
      return;
    }
    let page = 0;
    const pages = Math.ceil(result.rows.length / pageSize);
    const position = element("span", { class: "position" });
    const previous = element("button", { type: "button" }, "Previous");
    const next = element("button", { type: "button" }, "Next");
    const show = () => {
      const first = page * pageSize;
      const shown = result.rows.slice(first, first + pageSize);
      tbody.replaceChildren(...shown.map((row) => element("tr", {}, ...result.columns.map((c) => cell(row[c])))));
      position.textContent = `${first + 1}–${first + shown.length} of ${result.rows.length}`;
      previous.disabled = page === 0;
      next.disabled = page === pages - 1;
    };
    previous.addEventListener("click", () => { page -= 1; show(); });
    next.addEventListener("click", () => { page += 1; show(); });
    if (pages > 1) body.append(element("div", { class: "pager" }, position, previous, next));
    show();
  }

  function cell(value) {
    if (typeof value === "number") return element("td", { class: "number" }, formatNumber(value));
    return element("td", {}, value === null || value === undefined ? "" : String(value));
  }

  async function drawChart(body, i, result, ticket) {
    const panel = dashboard.panels[i];
    // The tile's heading already names the panel.
    const { title: _title, ...chart } = charts[i];
    const spec = { ...chart, data: { name: "rows", values: result.rows } };
    const holder = element("div", { class: "chart" });
    body.append(holder);
    const embedded = await vegaEmbed(holder, spec, { mode: "vega-lite", renderer: "svg", actions: false });
    if (ticket !== latest) {
      embedded.finalize(); // a newer answer is being drawn in its place
      return;
    }
    embeds[i] = embedded;
    if (panel.emit) {
      embedded.view.addEventListener("click", (_event, item) => {
        const label = item && item.datum ? item.datum[panel.label] : undefined;
        if (label !== undefined && label !== null) setFilter(panel.emit.param, String(label));
      });
    }
  }

  buildFilters();
  buildPanels();
  refresh();
})();
