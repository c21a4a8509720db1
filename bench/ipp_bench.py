"""The Python side of the benchmark suite (section 3): ipyparallel 7.1's own Client driving the same workloads
as bench/stack.ts, against whichever controller the profile directory belongs to (ipcontroller, or ours).

    /usr/bin/python3 bench/ipp_bench.py '<json options>'

Options: profile_dir, engines, warmup, sequential, tasks, map_items, chunksize, bulk_bytes, bulk_reps, and
workloads (a list of latency, throughput, map, bulk). Prints one line: @@RESULT@@ followed by JSON.
"""
import json
import statistics
import sys
import time

import ipyparallel as ipp

MARK = "@@RESULT@@ "


def echo(x):
    return x


def percentile(samples, p):
    ordered = sorted(samples)
    rank = max(1, -(-p * len(ordered) // 100))  # nearest rank, as bench/lib/stats.ts
    return ordered[int(rank) - 1]


def main():
    opts = json.loads(sys.argv[1])
    workloads = set(opts["workloads"])
    rc = ipp.Client(profile_dir=opts["profile_dir"])
    rc.wait_for_engines(opts["engines"], timeout=120)
    view = rc.load_balanced_view()
    out = {}

    view.wait([view.apply_async(echo, i) for i in range(opts["warmup"])])

    if "latency" in workloads:
        latencies = []
        for i in range(opts["sequential"]):
            t0 = time.perf_counter()
            view.apply_sync(echo, i)
            latencies.append((time.perf_counter() - t0) * 1000)
        out["latencyMedianMs"] = statistics.median(latencies)
        out["latencyP99Ms"] = percentile(latencies, 99)

    if "throughput" in workloads:
        n = opts["tasks"]
        t0 = time.perf_counter()
        results = [view.apply_async(echo, i) for i in range(n)]
        view.wait(results)
        out["tasksPerSec"] = n / (time.perf_counter() - t0)
        failed = [r for r in results if not r.successful()]
        if failed:
            raise RuntimeError(f"{len(failed)} echo tasks failed")

    if "map" in workloads:
        n = opts["map_items"]
        t0 = time.perf_counter()
        mapped = view.map_sync(echo, range(n), chunksize=opts["chunksize"])
        out["mapItemsPerSec"] = n / (time.perf_counter() - t0)
        if len(mapped) != n or mapped[-1] != n - 1:
            raise RuntimeError("map returned other items")

    if "bulk" in workloads:
        data = bytes(opts["bulk_bytes"])
        times = []
        for _ in range(opts["bulk_reps"]):
            t0 = time.perf_counter()
            back = view.apply_sync(echo, data)
            times.append(time.perf_counter() - t0)
            if len(back) != len(data):
                raise RuntimeError(f"the binary echo returned {len(back)} bytes")
        out["bulkMBps"] = len(data) / 1e6 / statistics.median(times)

    rc.close()
    print(MARK + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
