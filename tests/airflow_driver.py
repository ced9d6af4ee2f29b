"""Run by tests/test_airflow.py with .venv-airflow's Python, never by pytest: Airflow is not in our .venv.

  airflow_driver.py build                      parse the dags folder as Airflow's DagBag does; print the DAGs
  airflow_driver.py run DAG_ID [--at ISO] [--resume]
                                               one dag.test() run at logical date ISO (default now); --resume
                                               marks the tasks that succeeded in that run before as done and
                                               runs the rest, as Airflow's retry of a killed task does

Each prints one JSON line (prefixed `RESULT `) on stdout; everything else there is the task log.
AIRFLOW_HOME, AIRFLOW__CORE__DAGS_FOLDER and the gho-etl settings come from the environment.
"""

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone


def _result(value):
    print("RESULT " + json.dumps(value, default=str), flush=True)


def build():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.encoders import coerce_to_core_timetable

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags = {}
    for dag_id, dag in sorted(bag.dags.items()):
        tasks = [dag.task_dict[t] for t in sorted(dag.task_dict)]
        timetable = coerce_to_core_timetable(dag.timetable)  # what the scheduler runs
        dags[dag_id] = {
            "timetable": type(dag.timetable).__name__,
            "summary": timetable.summary,
            "timezone": str(getattr(timetable, "_timezone", "")),
            "tasks": {t.task_id: {"downstream": sorted(t.downstream_task_ids), "retries": t.retries} for t in tasks},
        }
    _result({"dags": dags, "import_errors": {os.path.basename(k): v for k, v in bag.import_errors.items()}})


def _task_states(dag_id, run_id, history=False):
    """{task_id: {state, try_number}} of a run; with `history`, every earlier try Airflow keeps, oldest first."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    with create_session() as session:
        if history:
            rows = session.query(TaskInstanceHistory).filter_by(dag_id=dag_id, run_id=run_id).all()
            rows.sort(key=lambda ti: (ti.task_id, ti.try_number))
            return [{"task_id": ti.task_id, "state": str(ti.state), "try_number": ti.try_number} for ti in rows]
        rows = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        return {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number} for ti in rows}


def _fail_killed_tries(dag, run_id):
    """What Airflow's scheduler does to a task whose process stopped heartbeating: `handle_failure`, which
    makes it up_for_retry while tries are left. dag.test() has no scheduler, and here the process is gone."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.serialization.serialized_objects import create_scheduler_operator
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        for ti in session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=run_id).all():
            if ti.state == TaskInstanceState.RUNNING:
                ti.task = create_scheduler_operator(dag.task_dict[ti.task_id])
                ti.handle_failure("the task's process was killed (no heartbeat)", session=session)


def run(dag_id, at, resume):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[dag_id]
    logical = datetime.fromisoformat(at) if at else datetime.now(timezone.utc)
    done, before = None, None
    if resume:
        with create_session() as session:
            (previous,) = session.query(DagRun).filter_by(dag_id=dag_id, logical_date=logical).all()
            run_id = previous.run_id
        _fail_killed_tries(dag, run_id)
        before = _task_states(dag_id, run_id)
        done = "|".join(t for t, s in before.items() if s["state"] == "success") or None
    started = time.monotonic()
    dag_run = dag.test(logical_date=logical, run_after=logical, mark_success_pattern=done)
    seconds = round(time.monotonic() - started, 1)
    _result(
        {
            "state": str(dag_run.state),
            "run_id": dag_run.run_id,
            "tasks": _task_states(dag_id, dag_run.run_id),
            "earlier_tries": _task_states(dag_id, dag_run.run_id, history=True),
            "before": before,
            "dag_test_s": seconds,  # reported, never asserted
        }
    )


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("build", "run"))
    parser.add_argument("dag_id", nargs="?")
    parser.add_argument("--at")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "build":
        build()
    else:
        run(args.dag_id, args.at, args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
