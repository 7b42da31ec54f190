"""Timing and the command line shared by the PyTorch peers of kernel_bench (attention_torch.py,
gemm_torch.py)."""
import argparse
import statistics


def time_ms(torch, fn, iters):
    """Median milliseconds of `iters` CUDA-event-timed calls of fn after 3 warm-up calls."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def peer_main(doc, run):
    """The peers' command line: --iters N (timed runs per case, the median reported); returns
    run(iters)'s exit status."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20, help="timed runs per case (median reported)")
    return run(parser.parse_args().iters)
