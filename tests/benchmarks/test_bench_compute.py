"""The compute benchmark's rows: every variant timed, float32 gradients checked against the plain
loop (a wrong one stops the run), the share of the machine's peak computed from it."""

from __future__ import annotations

from benchmarks.bench_compute import VARIANTS, Workload, measure


def test_every_variant_of_both_methods_gets_a_row_with_its_gradient_checked():
    rows = measure(Workload("conv4", 16, 1, 1, 1, 2), rounds=1, seconds=0.01)
    assert {str(r["workload"]).split(",")[0] for r in rows} == {"maml", "protonet"}
    maml = [r for r in rows if str(r["workload"]).startswith("maml")]
    assert len(maml) == 1 + len(VARIANTS) and maml[0]["method"] == "plain loop"
    assert any("channels-last" in str(r["method"]) for r in maml)
    for row in rows:
        assert float(row["tasks_per_s"]) > 0 and float(row["gflop_per_task"]) > 0
        if "float32" in str(row["method"]):
            assert float(row["gradient_error"]) < 1e-4, row["method"]


def test_chosen_methods_and_variants_time_only_those_beside_the_plain_loop():
    rows = measure(
        Workload("conv4", 16, 1, 1, 1, 2), rounds=1, seconds=0.01, methods=("maml",),
        variants=(VARIANTS[0],),
    )  # fmt: skip
    assert [r["method"] for r in rows] == ["plain loop", "fastmeta auto, float32"]
    assert float(rows[1]["gradient_error"]) < 1e-4
    protonet = measure(
        Workload("conv4", 16, 1, 1, 1, 2), rounds=1, seconds=0.01, methods=("protonet",),
        variants=(VARIANTS[3], VARIANTS[0]),
    )  # fmt: skip
    assert [r["method"] for r in protonet] == ["fastmeta auto, bf16", "fastmeta auto, float32"]
    assert protonet[1]["gradient_error"] == 0.0  # the float32 variant is the reference


def test_the_table_prints_rows_without_a_reference_and_the_json_comes_first(tmp_path, capsys):
    from benchmarks.report import publish

    rows = [{"method": "a", "ratio": None}, {"method": "b", "ratio": 1.5}]
    publish(
        rows, [("method", "method", ""), ("x", "ratio", ".2f")], {}, 0.0, str(tmp_path / "r.json")
    )
    table = capsys.readouterr().out
    assert "| a | - |" in table and "| b | 1.50 |" in table
    assert (tmp_path / "r.json").exists()
