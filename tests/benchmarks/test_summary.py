import json

from benchmarks.summary import main, speed_table


def row(workload, method, tasks_per_s, status="ok", memory=None):
    return {"benchmark": "maml", "workload": workload, "method": method, "status": status,
            "tasks_per_s": tasks_per_s, "peak_memory_mb": memory}  # fmt: skip


def test_auto_is_compared_with_the_fastest_accepted_peer():
    rows = [
        row("w", "fastmeta auto", 120.0, memory=50.0),
        row("w", "fastmeta loop", 200.0),  # fastmeta's own paths are not peers
        row("w", "learn2learn", 100.0, memory=10.0),
        row("w", "higher", 80.0),
        row("w", "TorchOpt", 500.0, status="refused"),  # a wrong gradient is never the best
    ]
    header, _, body = speed_table(rows)
    cells = [c.strip() for c in body.strip("|").split("|")]
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert dict(zip(columns, cells, strict=True)) == {
        "workload": "w", "fastmeta auto": "120.0", "fastmeta loop": "200.0",
        "learn2learn": "100.0", "higher": "80.0", "TorchOpt": "-",
        "fastest peer": "learn2learn", "auto / fastest peer": "1.20x", "MB auto / l2l": "50 / 10",
    }  # fmt: skip


def test_main_prints_one_table_per_benchmark(tmp_path, capsys):
    rows = [row("w", "fastmeta auto", 1.0), row("w", "learn2learn", 2.0)]
    rows.append({"benchmark": "sampling", "workload": "s", "method": "fastmeta TaskSet",
                 "status": "ok", "tasks_per_s": 5000.0, "ratio": 50.0})  # fmt: skip
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"command": "c", "date": "d", "machine": {}, "rows": rows}))
    main([str(path)])
    out = capsys.readouterr().out
    assert "| w | 1.0 | 2.0 | learn2learn | 0.50x | - / - |" in out
    assert "| s | fastmeta TaskSet | 5,000.0 | 50.0 |" in out
