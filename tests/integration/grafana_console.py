#!/usr/bin/env python3
"""Lays out a Grafana dashboard's panels as a Prometheus console template.

Grafana is not packaged for Debian 12, so the tests cannot render the shipped
dashboard in Grafana itself. This writes the same panels -- the same PromQL,
the same titles, the same grid -- as a console template that Prometheus
serves from --web.console.templates, drawn with Prometheus's own console
graphs (prom_console.js, from Prometheus's static files: nothing from
outside). Time series panels become graphs; stat and bar gauge panels become
tables of the current values, evaluated by Prometheus when it renders the
page.

  grafana_console.py DASHBOARD.json OUT.html [SECONDS]

SECONDS is the time range the graphs show (default 3600).

Grafana's variables are replaced as a dashboard showing "All" would have
them: $listener -> .*, $__rate_interval -> 1m.
"""
import html
import json
import sys

ROW_PX = 34  # one Grafana grid row


def promql(expr):
    return expr.replace("$__rate_interval", "1m").replace("$listener", ".*")


def graph(i, panel, height, duration):
    exprs = [promql(t["expr"]) for t in panel.get("targets", [])]
    names = [t.get("legendFormat") or None for t in panel.get("targets", [])]
    names = [n.replace("{{", "[[").replace("}}", "]]") if n else None for n in names]
    params = {"expr": exprs, "duration": duration, "height": height}
    if any(names):
        params["name"] = [n or "[[ listener ]]" for n in names]
    # json.dumps keeps the PromQL a JavaScript string; "</" cannot end the script.
    js = json.dumps(params).replace("</", "<\\/")
    return (f'<div id="panel{i}"></div>\n<script>'
            # Drawn once the grid is laid out, so each graph takes its cell's width.
            f'window.addEventListener("load",function(){{var p={js};var n=document.querySelector("#panel{i}");'
            f'p.node=n;p.width=n.clientWidth-50;new PromConsole.Graph(p);}});</script>')


def values(panel):
    rows = []
    for t in panel.get("targets", []):
        expr = promql(t["expr"])
        if "`" in expr:
            raise SystemExit(f"cannot quote {expr!r} for a console template")
        rows.append('{{ range query `' + expr + '` }}<tr><td>'
                    '{{ range $k, $v := .Labels }}{{ $k }}={{ $v }} {{ end }}</td>'
                    '<td class="value">{{ printf "%.2f" .Value }}</td></tr>{{ end }}')
    return '<table class="table table-sm values">' + "".join(rows) + "</table>"


def main():
    dashboard = json.load(open(sys.argv[1]))
    duration = int(sys.argv[3]) if len(sys.argv) > 3 else 3600
    cells = []
    for i, p in enumerate(dashboard["panels"]):
        g = p["gridPos"]
        height = max(g["h"] * ROW_PX - 150, 60)
        body = graph(i, p, height, duration) if p.get("type") == "timeseries" else values(p)
        cells.append(
            f'<section class="panel {html.escape(p.get("type", ""))}" style="grid-column:{g["x"] + 1} / span {g["w"]};'
            f'grid-row:{g["y"] + 1} / span {g["h"]}"><h2>{html.escape(p["title"])}</h2>\n{body}</section>')
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(dashboard.get("title", "dashboard"))}</title>
<link type="text/css" rel="stylesheet" href="{{{{ pathPrefix }}}}/classic/static/rickshaw/rickshaw.min.css">
<link type="text/css" rel="stylesheet" href="{{{{ pathPrefix }}}}/classic/static/bootstrap4/css/bootstrap.min.css">
<script src="{{{{ pathPrefix }}}}/classic/static/d3/d3.min.js"></script>
<script src="{{{{ pathPrefix }}}}/classic/static/rickshaw/rickshaw.min.js"></script>
<script src="{{{{ pathPrefix }}}}/classic/static/jquery/jquery.min.js"></script>
<script>var PATH_PREFIX = "{{{{ pathPrefix }}}}";</script>
<script src="{{{{ pathPrefix }}}}/classic/static/js/prom_console.js"></script>
<style>
body {{ margin: 12px; font: 13px sans-serif; background: #f4f5f7; }}
h1 {{ font-size: 18px; margin: 0 0 8px; }}
.grid {{ display: grid; grid-template-columns: repeat(24, 1fr); grid-auto-rows: {ROW_PX}px; gap: 6px; }}
.panel {{ background: #fff; border: 1px solid #d8d9dc; padding: 6px 8px; overflow: hidden; }}
.panel h2 {{ font-size: 13px; font-weight: 600; margin: 0 0 4px; }}
.values td.value {{ font-size: 20px; text-align: right; }}
</style></head><body>
<h1>{html.escape(dashboard.get("title", ""))} &mdash; panels of deploy/grafana, drawn by Prometheus</h1>
<div class="grid">
{chr(10).join(cells)}
</div>
</body></html>
"""
    with open(sys.argv[2], "w") as out:
        out.write(page)


if __name__ == "__main__":
    main()
