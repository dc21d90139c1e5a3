# SPDX-License-Identifier: MIT
# alloc.py - allocation-heavy, deterministic Python workload for
# real-programs.sh: dict/list/str/tuple churn, sorting, json round trips.
# Run with PYTHONMALLOC=malloc so every object goes through malloc().
# Prints only values that do not depend on addresses or hash seeds.
import hashlib
import json
import random

rng = random.Random(20240601)
digest = hashlib.sha256()
WORDS = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
         for _ in range(rng.randint(2, 12))) for _ in range(4000)]


def feed(obj):
    digest.update(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def churn(rounds):
    live = {}
    total = 0
    for i in range(rounds):
        key = WORDS[rng.randrange(len(WORDS))] + str(i % 997)
        op = rng.random()
        if op < 0.55:
            live[key] = [WORDS[(i + j) % len(WORDS)] * rng.randint(1, 6)
                     for j in range(rng.randint(0, 24))]
        elif op < 0.8:
            live.pop(key, None)
        else:
            val = live.get(key)
            if val:
                total += sum(len(s) for s in val)
                live[key] = tuple(sorted(val, reverse=True))
    feed(sorted((k, len(v)) for k, v in live.items()))
    return len(live), total


def records(n):
    out = []
    for i in range(n):
        out.append({
            "id": i,
            "name": WORDS[i % len(WORDS)].title(),
            "tags": [WORDS[(i * 7 + j) % len(WORDS)] for j in range(i % 9)],
            "score": (i * 2654435761) % 100003 / 7.0,
            "nested": {"a": i % 13, "b": [i, str(i), (i, -i)]},
        })
    return out


def json_rounds(recs, rounds):
    size = 0
    for r in range(rounds):
        text = json.dumps(recs[r::rounds], sort_keys=True)
        size += len(text)
        back = json.loads(text)
        back.sort(key=lambda d: (d["nested"]["a"], d["name"], d["id"]))
        feed([d["id"] for d in back])
    return size


def strings(n):
    parts = []
    for i in range(n):
        s = "%s-%d-%s" % (WORDS[i % len(WORDS)], i, WORDS[(i * 31) % len(WORDS)])
        parts.append(s.upper()[::-1].replace("A", "aa").split("-"))
    joined = "|".join("/".join(p) for p in parts)
    counts = {}
    for tok in joined.split("|"):
        first = tok.split("/", 1)[0]
        counts[first[:2]] = counts.get(first[:2], 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    feed(top)
    return len(joined), top[0]


def tuples(n):
    pts = [(rng.randint(-1000, 1000), rng.randint(-1000, 1000), WORDS[i % 50])
           for i in range(n)]
    pts.sort()
    groups = {}
    for x, y, w in pts:
        groups.setdefault(w, []).append((x * x + y * y, x, y))
    best = sorted((min(v), w) for w, v in groups.items())
    feed(best[:20])
    return len(pts), best[0][1]


live, total = churn(200000)
print("churn: live=%d total=%d" % (live, total))
recs = records(30000)
print("json: bytes=%d" % json_rounds(recs, 8))
size, (pair, count) = strings(100000)
print("strings: bytes=%d top=%s:%d" % (size, pair, count))
print("tuples: n=%d nearest=%s" % tuples(120000))
print("sha256:", digest.hexdigest())
