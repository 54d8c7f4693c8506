"""nf_auto_runner: the reference forecasting service (API, executor, trainer, ops commands).

Kept free of imports so that `python -m nf_auto_runner.worker` can join a cgroup before
anything heavy (torch) is loaded.
"""
