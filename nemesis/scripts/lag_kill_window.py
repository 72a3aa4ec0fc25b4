#!/usr/bin/env python3
"""usage: nemesis/scripts/lag_kill_window.py RUN_DIR...

For each leader kill of a lag fault: the appends acknowledged in the 100 ms before it, and
the first reads of the same keys that were invoked after that acknowledgement and completed
after the kill (ms after the kill): the reads that a too-early read would have made stale."""
import json, sys
for path in sys.argv[1:]:
    ev = [json.loads(l) for l in open(path + '/history.jsonl')]
    kills = [e['time'] for e in ev if e['process'] == 'nemesis' and e['f'] == 'start-kill'
             and (e.get('value') or {}).get('after') == 'lag'
             and (e.get('value') or {}).get('who') == 'leader']
    inv = {}
    ops = []
    for e in ev:
        if e['process'] == 'nemesis':
            continue
        if e['type'] == 'invoke':
            inv[e['process']] = e
        elif e['type'] == 'ok':
            i = inv.pop(e['process'], None)
            if i:
                ops.append((i['time'], e['time'], e['f'], e['key'], e.get('value'), e.get('result')))
    out = []
    for k in kills:
        acked = [o for o in ops if o[2] == 'append' and k - 100e6 <= o[1] <= k]
        first = []
        for a in acked:
            reads = [o for o in ops if o[2] == 'read' and o[3] == a[3] and o[0] > a[1] and o[1] > k]
            if reads:
                r = min(reads, key=lambda o: o[1])
                first.append(round((r[1] - k) / 1e6))
        out.append(f"kill at {k/1e9:.1f}s: {len(acked)} appends acked in the 100 ms before, first read of their key done {sorted(first)[:3]} ms after")
    print(path.split('/')[-1], '; '.join(out))
