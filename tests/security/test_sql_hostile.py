"""A hostile SQL corpus against `POST /api/p/<slug>/query` and `POST /v1/api/sql`: each case is refused with
its documented code, nothing outside the pipeline's tables is read, nothing at all is written, and the server
answers the next query. Then 20 queries at once, and the memory limit.

The pipeline `spending` has run; a second pipeline, `vault`, holds a row no query on `spending` may see.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from karet_defs.engine.run import run_pipeline
from karet_defs.errors import QueryError
from karet_defs.query.engine import QueryLimits, run_query
from karet_defs.store import keys
from karet_defs.templates import install_template
from tests.conftest import API_KEY
from tests.factories import data_dir_snapshot, put_raw

SHARES_DAGSTER_INSTANCE = True
SECRET = "VAULT SECRET 4242"
TIMEOUT_SECONDS = 0.5
MAX_ROWS = 100


@pytest.fixture
def hostile(make_client, local_settings, local_stores, tmp_path):
    """The API (short time limit, small row cap) over `spending` and `vault`, and a data-dir snapshot."""
    client = make_client(
        local_settings.model_copy(
            update={"query_timeout_seconds": TIMEOUT_SECONDS, "query_max_rows": MAX_ROWS}
        )
    )
    for slug in ("spending", "vault"):
        install_template(local_stores, slug, "spending")
    put_raw(
        local_stores,
        "pipelines/vault/transactions/secret.csv",
        f"date,description,amount,account\n2026-04-09,{SECRET},1.00,visa\n",
    )
    run_pipeline(local_stores, "spending")
    run_pipeline(local_stores, "vault")
    root = Path(local_settings.data_dir)

    def snapshot() -> dict[str, str]:
        return data_dir_snapshot(root)

    return client, snapshot, root


def _vault_file(root: Path) -> str:
    prefix = root / keys.table_prefix("vault", "transactions")
    return str(next(prefix.rglob("*.parquet")))


# (sql, error code); `{vault}` is a data file of the other pipeline, `{out}` a path outside every store.
KARET_CORPUS = [
    ("SELECT * FROM read_csv('/etc/passwd')", "query_not_allowed"),
    ("SELECT * FROM read_text('/etc/passwd')", "query_not_allowed"),
    ("SELECT * FROM read_csv_auto('https://example.com/x.csv')", "query_not_allowed"),
    ("SELECT * FROM read_parquet('{vault}')", "query_not_allowed"),
    (
        "SELECT * FROM parquet_scan('s3://karet/pipelines/vault/clean/transactions/*.parquet')",
        "query_not_allowed",
    ),
    ("SELECT * FROM glob('{root}/**')", "query_not_allowed"),
    ("SELECT * FROM '{vault}'", "query_not_allowed"),
    ("SELECT * FROM vault.transactions", "query_error"),
    ("SELECT * FROM query_table('vault.transactions')", "query_error"),
    ("SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')", "query_not_allowed"),
    ("SELECT * FROM query('COPY transactions TO ''{out}''')", "query_error"),
    ("COPY transactions TO '{out}'", "query_not_allowed"),
    ("COPY (SELECT * FROM transactions) TO '{out}' (FORMAT parquet)", "query_not_allowed"),
    ("EXPORT DATABASE '{out}'", "query_not_allowed"),
    ("ATTACH '{out}' AS evil", "query_not_allowed"),
    ("INSTALL httpfs", "query_not_allowed"),
    ("LOAD httpfs", "query_not_allowed"),
    ("PRAGMA database_list", "query_not_allowed"),
    ("SET enable_external_access = true", "query_not_allowed"),
    ("RESET lock_configuration", "query_not_allowed"),
    ("CALL pragma_version()", "query_not_allowed"),
    ("CREATE TABLE t AS SELECT * FROM transactions", "query_not_allowed"),
    ("DROP VIEW transactions", "query_not_allowed"),
    ("WITH x AS (SELECT 1) INSERT INTO transactions SELECT * FROM x", "query_not_allowed"),
    ("SELECT 1; COPY transactions TO '{out}'", "query_not_allowed"),
    ("SELECT 1 -- harmless\n; ATTACH '{out}' AS evil", "query_not_allowed"),
    ("SELECT 1 /* ; */ ; DROP VIEW transactions /* */", "query_not_allowed"),
    ("SELECT * FROM stores", "query_error"),  # a Python variable DuckDB's replacement scans would find
    ("SELECT * FROM range(1000000000)", "result_too_large"),
    ("SELECT * FROM transactions a, transactions b, transactions c", "result_too_large"),
    (
        "SELECT max(a.description || b.description || c.description || d.description || e.description) "
        "FROM transactions a, transactions b, transactions c, transactions d, transactions e",
        "query_timeout",
    ),
]


@pytest.mark.parametrize(("sql", "error"), KARET_CORPUS, ids=[f"{i:02d}" for i in range(len(KARET_CORPUS))])
def test_karet_query_refuses_hostile_sql(hostile, tmp_path, sql, error):
    client, snapshot, root = hostile
    out = tmp_path / "stolen.out"
    text = sql.format(vault=_vault_file(root), root=root, out=out)
    before = snapshot()

    started = time.monotonic()
    response = client.post("/api/p/spending/query", json={"sql": text})

    assert (response.status_code, response.json()["error"]) == (400, error), response.text
    assert SECRET not in response.text and "root:" not in response.text
    assert time.monotonic() - started < TIMEOUT_SECONDS + 5
    assert not out.exists()
    assert snapshot() == before
    after = client.post("/api/p/spending/query", json={"sql": "SELECT count(*) AS n FROM transactions"})
    assert after.json()["rows"] == [{"n": 35}]


@pytest.mark.parametrize(
    ("sql", "params", "status", "code"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", None, 403, "PERMISSION_DENIED"),
        ("SELECT * FROM spending.transactions, vault.transactions", None, 403, "PERMISSION_DENIED"),
        ("SELECT 1; SELECT * FROM vault.transactions", None, 403, "PERMISSION_DENIED"),
        ("ATTACH '/tmp/evil.db' AS evil", None, 403, "PERMISSION_DENIED"),
        ("SELECT * FROM spending.vault", None, 404, "TABLE_NOT_FOUND"),
        ("SELECT * FROM range(1000000000)", None, 400, "RESULT_TOO_LARGE"),
        ("SELECT count(*) FROM spending.transactions WHERE description = $1", ["' OR 1=1 --"], 200, None),
        ("SELECT $1 AS v", ["1); COPY x TO '/tmp/evil'; --"], 200, None),
        ("SELECT * FROM spending.transactions WHERE amount > $1", [], 400, "INVALID_SQL"),
    ],
    ids=[
        "file",
        "two-pipelines",
        "stacked",
        "attach",
        "unknown",
        "huge",
        "param-quote",
        "param-stmt",
        "no-param",
    ],
)
def test_kalam_sql_refuses_hostile_sql(hostile, sql, params, status, code):
    client, snapshot, _ = hostile
    before = snapshot()

    response = client.post(
        "/v1/api/sql", json={"sql": sql, "params": params}, headers={"Authorization": f"Bearer {API_KEY}"}
    )

    assert response.status_code == status, response.text
    assert SECRET not in response.text
    if code is None:
        assert response.json()["results"][0]["rows"] in ([[0]], [[params[0]]])
    else:
        assert response.json()["error"]["code"] == code
    assert snapshot() == before


def test_twenty_concurrent_queries_all_answer(hostile):
    client, _, _ = hostile
    sql = "SELECT category, sum(amount) AS total FROM transactions WHERE month = {m} GROUP BY ALL ORDER BY 1"

    def ask(i: int):
        return client.post("/api/p/spending/query", json={"sql": sql.format(m=4 + i % 2)})

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(ask, range(20)))

    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.text for r in responses}) == 2


def test_the_memory_limit_stops_a_query_and_the_next_one_runs(local_stores):
    install_template(local_stores, "spending", "spending")
    run_pipeline(local_stores, "spending")
    limits = QueryLimits(memory_limit="64MB", timeout_seconds=30)

    with pytest.raises(QueryError, match="Out of Memory"):
        run_query(
            local_stores,
            "spending",
            "SELECT string_agg(range::VARCHAR, ',') FROM range(30000000)",
            limits=limits,
        )

    assert run_query(local_stores, "spending", "SELECT count(*) FROM transactions", limits=limits).rows == [
        [35]
    ]
