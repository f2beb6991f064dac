"""--cluster on a real Dask LocalCluster with worker processes: the run stores exactly what a local
run stores, and a worker killed while it runs a task costs nothing but time."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support import (
    database_snapshot,
    demo_args,
    flat,
    run_program,
    shared_demo_run,
    start_program,
    wide_env,
    write_fast_config,
)

distributed = pytest.importorskip("distributed", reason="the optional 'cluster' extra (distributed) is not installed")
pytestmark = pytest.mark.slow

SYMBOLS = 5


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as local, distributed.Client(local) as client:
        yield local.scheduler_address, client


def test_a_cluster_run_stores_exactly_what_a_local_run_stores(tmp_path_factory, tmp_path, cluster):
    address, client = cluster
    local = shared_demo_run(tmp_path_factory, SYMBOLS)
    result = run_program("run_training.py", *demo_args(tmp_path, write_fast_config(tmp_path), SYMBOLS,
                                                       "--cluster", address))
    assert result.returncode == 0, result.stdout + result.stderr
    expected, actual = database_snapshot(local), database_snapshot(tmp_path)
    for table in expected:
        assert actual[table] == expected[table], f"{table} differs between --cluster and a local run"
    prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert {"compute_symbol", "fit_and_predict"} <= set(prefixes), f"the work ran on the cluster: {prefixes}"


def test_a_worker_killed_mid_task_is_replaced_and_the_result_is_unchanged(tmp_path_factory, tmp_path, cluster):
    address, client = cluster
    local = shared_demo_run(tmp_path_factory, SYMBOLS)
    process = start_program("run_training.py", *demo_args(tmp_path, write_fast_config(tmp_path), SYMBOLS,
                                                          "--cluster", address), env=wide_env())
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and process.poll() is None and time.monotonic() < deadline:
        busy = [worker for worker, tasks in client.processing().items() if tasks]
        if busy:
            pids = client.run(os.getpid, workers=busy[:1])
            killed = next(iter(pids.values()))
            os.kill(killed, signal.SIGKILL)  # the nanny starts a new worker; the scheduler reruns its task
        else:
            time.sleep(0.02)
    output = process.communicate(timeout=600)[0]
    assert killed is not None, "no worker was ever seen running a task: " + output
    assert process.returncode == 0, output
    expected, actual = database_snapshot(local), database_snapshot(tmp_path)
    for table in expected:
        assert actual[table] == expected[table], f"{table} differs after a worker was killed"


def test_an_unreachable_scheduler_is_said_plainly(tmp_path):
    result = run_program("run_training.py", *demo_args(tmp_path, write_fast_config(tmp_path), SYMBOLS,
                                                       "--cluster", "tcp://127.0.0.1:9"), env=wide_env())
    assert result.returncode == 3, result.stdout + result.stderr
    assert "The Dask scheduler at tcp://127.0.0.1:9 cannot be reached" in flat(result)
    assert "Traceback" not in result.stdout + result.stderr
