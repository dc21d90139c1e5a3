#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""html.py HEAPPROF PROGS - heapprof report --format html, read in a real
browser (headless Chromium, tests/report/browser.py) offline.

Heap patterns of tests/progs/pattern.c (1000 slivers between live chunks:
1000 holes and pins; a live pin; a thread arena's heap; mmap chunks), a
fork/exec tree and a snapshot recording are each written as a page and
loaded. The page must make no request but its own file (the DevTools
protocol sees every request, and a control page shows that it would see
one) and break no Content-Security-Policy rule; its DOM must say what the
JSON report says: the number of pins and holes, the top pin's function,
every figure to the byte, one map per heap, one tab per process. Its
data must add up: each map's cells sum to the figures of their instant,
and each stored instant's figures are report --at that instant's. A
click on the worst instant's mark re-renders the map there; a click
elsewhere says how to get that instant; hovering the top pin's cell shows
its stack. A screenshot of the page is not blank and shows the map's
colours. Bad input: one line, exit 2.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402

HEAPPROF, PROGS = sys.argv[1], sys.argv[2]
HOLE_RGB = (0xd8, 0x42, 0x3c)
LIVE_RGB = (0x3b, 0x78, 0xd8)
failures = 0
checks = 0


def check(desc, want, got):
    global failures, checks
    checks += 1
    if want != got:
        failures += 1
        print(f"FAIL - {desc}: want [{want}], got [{got}]")
    elif os.environ.get("VERBOSE"):
        print(f"ok - {desc}")


def run(*args):
    return subprocess.run([HEAPPROF, *args], capture_output=True, text=True)


def record(tmp, name, prog, *args, snapshots=False, env=None):
    db = os.path.join(tmp, name + ".db")
    p = subprocess.run([HEAPPROF, "run", "-o", db, *(["--snapshots"] if snapshots else []),
                        os.path.join(PROGS, prog), *args], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})))
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit(f"recording {name} failed")
    return db


def report(db, *args):
    p = run("report", db, "--format", "json", "--top", "100000", *args)
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit(1)
    return json.loads(p.stdout)["processes"]


def page(db, *args):
    out = db[:-3] + ".html"
    p = run("report", db, "--format", "html", "-o", out, *args)
    check(f"{os.path.basename(out)}: written, exit 0, nothing on stdout", (0, ""),
          (p.returncode, p.stdout))
    return out


def embedded(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r'<script id="heapprof-data" type="application/json">(.*?)</script>', text, re.S)
    return text, json.loads(m.group(1))


FIGS = ["extent", "live", "cached", "allocator", "top_free", "untrimmable", "trim_reclaimable",
        "mmap", "retained"]


def data_adds_up(name, db, data):
    """each map's cells add up to their instant's figures; each instant's
    figures are report --at that instant's"""
    for p in data["processes"]:
        for f in p["frames"]:
            g = f["fig"]
            tot = [0] * 5
            for h in f["heaps"]:
                n = 0
                for run_ in h["cells"]:
                    n += run_[0]
                    for s in range(5):
                        tot[s] += run_[0] * run_[1 + s]
                check(f"{name}: {f['label']}@{f['at_ns']}: a heap's cells cover it", h["ncells"], n)
            check(f"{name}: {f['label']}@{f['at_ns']}: cells sum to live, cached, allocator's, "
                  "untrimmable, top free",
                  [g["live_bytes"], g["cached_bytes"], g["allocator_bytes"],
                   g["untrimmable_bytes"], g["top_free_bytes"]], tot)
            if data["recording"] == "snapshots":
                at = ["--at", f"{f['at_ns'] / 1e9:.9f}"] if f["label"] not in (
                    "exit", "worst", "peak") else ["--at", f["label"]]
            else:
                at = ["--at", f["label"]] if f["label"] != "time" else \
                    ["--at", f"{f['at_ns'] / 1e9:.9f}"]
            r = [x for x in report(db, "--pid", str(p["pid"]), *at)
                 if x["process_id"] == p["process_id"]][0]
            check(f"{name}: {f['label']}@{f['at_ns']}: figures as report {' '.join(at)}",
                  [r[k + "_bytes"] for k in FIGS], [g[k + "_bytes"] for k in FIGS])
            check(f"{name}: {f['label']}@{f['at_ns']}: pins and holes as report {' '.join(at)}",
                  (len(r["pins"]), len(r["holes"])), (f["npins"], f["nholes"]))


def dom(b, expr):
    return b.eval(expr)


def text_of(b, sel):
    return dom(b, f"(document.querySelector({json.dumps(sel)}) || {{}}).textContent")


def loads_offline(b, name, path):
    url = "file://" + path
    reqs = b.open(url)
    check(f"{name}: the only request is the page itself", [url], reqs)
    check(f"{name}: no Content-Security-Policy violation", [], dom(b, "window.__violations"))
    check(f"{name}: drawn", "1", dom(b, "document.body.dataset.ready"))


def text_report(db, *args):
    p = run("report", db, *args)
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit(1)
    return p.stdout


def dom_is_report(b, name, r, nheaps=1, kept=2000, text=None):
    """kept: pins the page keeps of this instant (2000 of the instant shown
    first, 200 of the others)"""
    check(f"{name}: pins in the DOM = the JSON report's", str(len(r["pins"])), text_of(b, "#map-pins"))
    check(f"{name}: holes in the heap map = the JSON report's", str(len(r["holes"])),
          text_of(b, "#map-holes"))
    check(f"{name}: a marker for each pin kept", str(min(len(r["pins"]), kept)),
          dom(b, "document.getElementById('maps').dataset.pinMarkers"))
    top = r["pins"][0]["stack"][0]["function"] if r["pins"] else ""
    check(f"{name}: the top pin's function", top, text_of(b, "#top-pin-function") or "")
    got = dom(b, "Array.from(document.querySelectorAll('#figures tr[data-figure]')).map("
                 "tr => [tr.dataset.figure, +tr.children[1].title.split(' ')[0]])")
    want = [["heap extent", r["extent_bytes"]], ["live", r["live_bytes"]],
            ["cached", r["cached_bytes"]], ["allocator's own", r["allocator_bytes"]],
            ["untrimmable", r["untrimmable_bytes"]], ["top free", r["top_free_bytes"]],
            ["mmap", r["mmap_bytes"]], ["retained", r["retained_bytes"]],
            ["malloc_trim(0)", r["trim_reclaimable_bytes"]]]
    if r.get("pymalloc_arenas"):
        want.append(["pymalloc", r["pymalloc_bytes"]])
    if r.get("program_mmaps"):
        want.append(["other mmaps", r["program_mmap_bytes"]])
    check(f"{name}: every figure to the byte", want, got)
    if text is not None:
        advice = " ".join((text_of(b, "#advice") or "").split())
        check(f"{name}: the text report's sentence on what would give the memory back ({advice[:60]}...)",
              True, len(advice) > 40 and advice in " ".join(text.split()))
    check(f"{name}: one map per heap", nheaps, dom(b, "document.querySelectorAll('canvas.map').length"))
    check(f"{name}: the pin table's rows", min(len(r["pins"]), 10),
          dom(b, "document.querySelectorAll('#pins tr.pin-row').length"))


def click_frame(b, which):
    """a real click on the mark of the instant `which` (worst, peak, exit)"""
    k = dom(b, f"P.{which}_frame")
    xy = dom(b, f"(() => {{ window.scrollTo(0, 0); const r = document.querySelector("
                f"'.frame-point[data-frame=\"{k}\"]').getBoundingClientRect();"
                " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
    b.click(xy[0], xy[1])


def screenshot_shows_map(name, data, path):
    w, h, rows = browser.png_pixels(data)
    colours, hole, live, white = set(), 0, 0, 0
    for row in rows:
        for px in row:
            colours.add(px)
            hole += px == HOLE_RGB
            live += px == LIVE_RGB
            white += px == (255, 255, 255)
    check(f"{name}: screenshot not blank ({w}x{h}, {len(colours)} colours, "
          f"{100 * white // (w * h)}% white; {path})", True,
          len(colours) > 50 and white < 0.97 * w * h)
    return hole, live


def in_browser(b, tmp, pages, slivers, live_pin, worst_page, arena, mmap, tree, snap):
    """everything read in the browser"""
    # the watch sees a request, and a violation, when there is one
    ctl = os.path.join(tmp, "control.html")
    with open(ctl, "w") as f:
        f.write('<html><body><img src="http://127.0.0.1:9/pixel.png"></body></html>')
    reqs = b.open("file://" + ctl)
    check("control: a page's request is seen", True, "http://127.0.0.1:9/pixel.png" in reqs)
    with open(ctl, "w") as f:
        f.write("<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                "'none'\"></head><body><img src=\"http://127.0.0.1:9/pixel.png\"></body></html>")
    b.open("file://" + ctl)
    check("control: a blocked request is seen as a violation", True,
          bool(dom(b, "window.__violations")))

    # 1000 slivers: 1000 holes, 1000 pins
    r = report(slivers)[0]
    check("slivers: the pattern has its 1000 holes", True, len(r["holes"]) >= 1000)
    loads_offline(b, "slivers", pages["slivers"])
    dom_is_report(b, "slivers", r, text=text_report(slivers))
    check("slivers: shown at exit", "exit", text_of(b, "#frame-label"))
    check("slivers: no allocator settings line (glibc's defaults)", None,
          text_of(b, "#settings"))
    shot = b.screenshot(os.path.join(PROGS, "html-slivers.png"))
    hole, live = screenshot_shows_map("slivers", shot, os.path.join(PROGS, "html-slivers.png"))
    check("slivers: the map draws holes and live chunks", True, hole > 2000 and live > 2000)
    # an instant not shown first keeps fewer holes in the page, not fewer in its counts
    click_frame(b, "worst")
    check("slivers: a click on worst's mark shows worst", "worst", text_of(b, "#frame-label"))
    dom_is_report(b, "slivers clicked to worst", report(slivers, "--at", "worst")[0], kept=200)
    check("slivers: and it says how many it marks", True,
          "(the top 200 marked)" in text_of(b, "#maps"))

    # a live pin: the worst instant by a click, another instant by a click
    r_exit = report(live_pin)[0]
    r_worst = report(live_pin, "--at", "worst")[0]
    loads_offline(b, "live-pin", pages["live-pin"])
    dom_is_report(b, "live-pin", r_exit, text=text_report(live_pin))
    check("live-pin: the page names the allocator settings",
          "allocator settings: MALLOC_TOP_PAD_=131072", text_of(b, "#settings"))
    click_frame(b, "worst")
    check("live-pin: a click on worst's mark shows worst", "worst", text_of(b, "#frame-label"))
    dom_is_report(b, "live-pin clicked to worst", r_worst, kept=200,
                  text=text_report(live_pin, "--at", "worst"))
    loads_offline(b, "live-pin --at worst", worst_page)
    check("live-pin --at worst: shown first", "worst", text_of(b, "#frame-label"))
    dom_is_report(b, "live-pin --at worst", r_worst)
    # a click between stored instants: the nearest, and how to get that one
    xy = dom(b, "(() => { const s = document.getElementById('timeline').getBoundingClientRect();"
                " const f = Array.from(document.querySelectorAll('.frame-point')).map(d =>"
                " d.getBoundingClientRect().left); f.sort((a, b) => a - b);"
                " let x = f[0], gap = 0; for (let i = 1; i < f.length; i++)"
                " if (f[i] - f[i - 1] > gap) { gap = f[i] - f[i - 1]; x = (f[i] + f[i - 1]) / 2 + 3; }"
                " return [x, s.top + s.height / 2]; })()")
    b.click(xy[0], xy[1])
    note = text_of(b, "#click-note")
    check(f"live-pin: a click off the stored instants says how to get it ({note})", True,
          "No heap map was stored" in note and "--at" in note and "heapprof report" in note)
    # hovering the top pin's cell shows the pin and its stack
    b.open("file://" + pages["live-pin"])
    xy = dom(b, "(() => { const F = D.processes[0].frames[D.processes[0].shown], p = F.pins[0],"
                " h = F.heaps[p[6]], i = Math.floor((p[0] - h.start) / h.cell);"
                " const c = document.querySelectorAll('canvas.map')[p[6]]; c.scrollIntoView();"
                " const r = c.getBoundingClientRect();"
                " return [r.left + (i % 64) * 15 + 7, r.top + Math.floor(i / 64) * 15 + 7]; })()")
    b.mouse("mouseMoved", xy[0], xy[1])
    tip = text_of(b, "#tip")
    check(f"live-pin: hovering the top pin's cell shows it ({tip[:80]}...)", True,
          "the top pin" in tip and "keep_config (pattern.c:" in tip and "weight" in tip)
    check("live-pin: and the hole below it, with who last held it", True,
          "hole of" in tip or "fill_blocks" in tip or
          dom(b, "D.processes[0].frames[D.processes[0].shown].holes.length") > 0)

    # two heaps, mmap chunks, a tree of processes
    r = report(arena)[0]
    loads_offline(b, "arena", pages["arena"])
    dom_is_report(b, "arena", r, nheaps=len(r["heaps"]))
    check("arena: two heaps, the brk heap and the arena's", 2, len(r["heaps"]))
    r = report(mmap)[0]
    loads_offline(b, "mmap", pages["mmap"])
    dom_is_report(b, "mmap", r)
    check("mmap: a box per live mmap chunk", r["mmap_chunks"],
          dom(b, "document.querySelectorAll('.mmaps div').length"))
    procs = report(tree)
    loads_offline(b, "tree", pages["tree"])
    check("tree: a tab per process", len(procs), dom(b, "document.querySelectorAll('#procs button').length"))
    pids = dom(b, "Array.from(document.querySelectorAll('#procs button')).map(x => +x.textContent.split(' ')[1])")
    check("tree: the processes of the JSON report", [p["pid"] for p in procs], pids)
    last = len(procs) - 1
    dom(b, f"document.querySelectorAll('#procs button')[{last}].click()")
    with_frames = dom(b, "P.frames.length > 0")
    if with_frames:
        check("tree: the last process's pins", str(len(procs[last]["pins"])), text_of(b, "#map-pins"))

    # a snapshot recording: the map only at its snapshots, and it says so
    r = report(snap)[0]
    loads_offline(b, "snap", pages["snap"])
    dom_is_report(b, "snap", r)
    listed = json.loads(run("report", snap, "--list-snapshots", "--format", "json").stdout)
    check("snap: a mark per snapshot", len(listed["processes"][0]["snapshots"]),
          dom(b, "document.querySelectorAll('.frame-point').length"))
    check("snap: the page says the map exists only at the snapshots", True,
          "only at the" in text_of(b, "#timeline-note"))


def main():
    if not browser.chromium_path():
        print("chromium is not installed: sh scripts/deps.sh (as root) installs it")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        slivers = record(tmp, "slivers", "pattern", "slivers")
        # with a setting, which the page names (glibc's default value: the
        # heap is the same)
        live_pin = record(tmp, "live-pin", "pattern", "live-pin",
                          env={"MALLOC_TOP_PAD_": "131072"})
        arena = record(tmp, "arena", "pattern", "arena-pin")
        mmap = record(tmp, "mmap", "pattern", "mmap-only")
        tree = record(tmp, "tree", "rec-tree")
        snap = record(tmp, "snap", "pattern", "slivers", snapshots=True)
        pages = {n: page(db) for n, db in (("slivers", slivers), ("live-pin", live_pin),
                                           ("arena", arena), ("mmap", mmap), ("tree", tree),
                                           ("snap", snap))}
        worst_page = page(live_pin, "--at", "worst")
        os.rename(worst_page, os.path.join(tmp, "live-pin-worst.html"))
        worst_page = os.path.join(tmp, "live-pin-worst.html")
        page(live_pin)

        # the files themselves: small, one piece, nothing fetched
        for n, path in pages.items():
            text, data = embedded(path)
            check(f"{n}: under 3 MB ({os.path.getsize(path)} bytes)", True,
                  os.path.getsize(path) < 3 << 20)
            check(f"{n}: nothing to fetch (no src, href, url(), @import)", [],
                  re.findall(r"<(?:script|img|link|iframe)[^>]*\s(?:src|href)=|url\(|@import", text))
            check(f"{n}: the Content-Security-Policy forbids every request", True,
                  "default-src 'none'" in text)
        for n, db in (("slivers", slivers), ("arena", arena), ("snap", snap)):
            data_adds_up(n, db, embedded(pages[n])[1])

        with browser.Browser(1280, 900) as b:
            in_browser(b, tmp, pages, slivers, live_pin, worst_page, arena, mmap, tree, snap)

        # bad input
        for args, desc in ((["--format", "text", "-o", os.path.join(tmp, "x.html")], "-o with text"),
                           (["--format", "html", "-o", tmp], "-o a directory"),
                           (["--format", "html", "-o", os.path.join(tmp, "no", "x.html")],
                            "-o in a missing directory"),
                           (["--format", "svg"], "an unknown format")):
            p = run("report", slivers, *args)
            check(f"{desc}: exit 2, one line", (2, 1, ""), (p.returncode, len(p.stderr.splitlines()),
                                                           p.stdout))
        check("no half-written page left", [], [n for n in os.listdir(os.path.dirname(tmp))
                                               if n.startswith(os.path.basename(tmp) + ".")])
    print(f"{checks} checks, {failures} failed")
    return 1 if failures else 0


sys.exit(main())
