"""The project's own tools: install_requirements verification, format_code, run_tests."""

from tests.helpers import run_script


def test_install_requirements_verifies_the_real_environment(script_env):
    result = run_script("utils/install_requirements.py", "--check", env=script_env, check=0)
    lines = result.stdout.splitlines()
    # Distribution names that differ from import names are found by their metadata.
    assert any(line.split()[:2] == ["ok", "psycopg2-binary"] for line in lines)
    assert any(line.split()[:2] == ["ok", "python-dotenv"] for line in lines)
    assert lines[-1].startswith("all ") and lines[-1].endswith(" requirements satisfied")


def test_install_requirements_reports_missing_and_wrong_versions(tmp_path, script_env):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pandas==0.0.1\nno-such-distribution-gho==1.0\nrequests\n")
    result = run_script("utils/install_requirements.py", "--check", "-r", str(requirements), env=script_env)
    assert result.returncode == 1
    assert "  WRONG    pandas" in result.stdout and "(wants 0.0.1)" in result.stdout
    assert "  MISSING  no-such-distribution-gho (wants 1.0)" in result.stdout
    assert "error: 2 of 3 requirements not satisfied" in result.stderr


def test_format_check_passes_on_the_repository(script_env):
    result = run_script("utils/format_code.py", "--check", env=script_env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_tests_fails_when_no_test_is_collected(tmp_path, script_env):
    empty = tmp_path / "test_nothing.py"
    empty.write_text("")
    result = run_script("./run_tests.py", str(empty), env=script_env)
    assert result.returncode == 1
    assert "no tests were collected" in result.stderr


def test_run_tests_refuses_a_worker_count_that_is_not_a_number(tmp_path, script_env):
    empty = tmp_path / "test_nothing.py"
    empty.write_text("")
    result = run_script("./run_tests.py", str(empty), env=dict(script_env, GHO_TEST_WORKERS="two"))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "GHO_TEST_WORKERS" in line and "'two'" in line
