#!/usr/bin/env python3
"""What p99 ÷ p50 a batching server can reach at a given load: a discrete-event simulation of
`alloy serve`'s batcher (one worker; the oldest waiting sequence opens a batch that takes every
waiting sequence up to `cap`) with a batch of k sequences taking a + b·k ms, and c ms per
request spent outside the queue (HTTP, JSON, the client). Arrivals are Poisson (exponential
gaps, seeded) or evenly spaced (a constant rate, as wrk2 -R sends).

With b ≫ a (on CPU a batch costs nearly its sequences' sum) this is close to M/D/1, whose
sojourn time at ρ = 0.5 has p99 ≈ 4.3 × p50: half the requests find the server idle (p50 ≈ one
service time), a few find a burst of several ahead of them.

Usage: serve_queue_sim.py A_MS B_MS C_MS RATE [--cap K] [--n N] [--seed S]
Prints one JSON object per arrival process.
"""
import collections, json, random, sys


def simulate(rate, a, b, c, cap=10**9, n=200_000, seed=1, even=False):
    """Latencies (ms) of `n` requests at `rate`/s through one batching worker."""
    rng = random.Random(seed)
    t, arrivals = 0.0, []
    for _ in range(n):
        t += 1 / rate if even else rng.expovariate(rate)
        arrivals.append(t)
    queue, free, i, lat = collections.deque(), 0.0, 0, []
    while i < n or queue:
        while i < n and arrivals[i] <= free:
            queue.append(arrivals[i]); i += 1
        if not queue:
            free = arrivals[i]
            continue
        batch = [queue.popleft() for _ in range(min(cap, len(queue)))]
        free += (a + b * len(batch)) / 1000
        lat += [1000 * (free - x) + c for x in batch]
    return sorted(lat)


def main():
    args = sys.argv[1:]
    opt = lambda k, d: type(d)(args[args.index(k) + 1]) if k in args else d
    a, b, c, rate = (float(x) for x in args[:4])
    cap, n, seed = opt("--cap", 10**9), opt("--n", 200_000), opt("--seed", 1)
    for even in (False, True):
        lat = simulate(rate, a, b, c, cap, n, seed, even)
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
        print(json.dumps({"arrivals": "constant rate" if even else "Poisson", "rate": rate, "a_ms": a, "b_ms": b, "c_ms": c,
                          "cap": cap if cap < 10**9 else None, "rho": round(rate * b / 1000, 3),
                          "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "p99_over_p50": round(p99 / p50, 2)}))


if __name__ == "__main__":
    main()
