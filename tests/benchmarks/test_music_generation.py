"""The music benchmark runs end to end on the debug preset and reports what it measured: the KV memory one
stream holds is exactly what the patterns keep (row: a block, column: every key, prev_row: two blocks)."""
from benchmarks import music_generation


def test_music_benchmark_tables(capsys):
    result = music_generation.main(["--preset", "debug", "--context", "32", "--naive-points", "2", "--seconds",
                                    "0.02", "--batches", "1,2", "--threads", "1"])
    levels, whole = result["levels"], result["whole"]
    assert [r["level"] for r in levels] == [1, 0] and [r["batch"] for r in whole] == [1, 2]
    block, dim, context = 8, 16, 32                               # the debug prior: row, column, prev_row layers
    for r in levels:
        assert r["kv_stream_kb"] * 1024 == 2 * 4 * dim * (block + context + 2 * block)
        assert r["kv_full_kb"] * 1024 == 2 * 4 * dim * 3 * context
        assert r["cached_tokens_s"] > 0 and r["naive_tokens_s"] > 0
    for r in whole:
        assert abs(r["rtf_aggregate"] * r["batch"] - r["rtf_stream"]) < 1e-9 and r["level1"] > 0 and r["level0"] > 0
    out = capsys.readouterr().out
    assert "cached / naive" in out and "RTF aggregate" in out and "load average" in out


def test_music_benchmark_on_a_trained_hierarchy(saved_music, capsys):
    """``--model``: the saved hierarchy's own priors, each level's window at its prior's context."""
    from arsound.core.checkpoint import load

    gen = load(saved_music)
    result = music_generation.main(["--model", str(saved_music), "--naive-points", "2", "--seconds", "0.02",
                                    "--batches", "1", "--threads", "1"])
    assert [(r["level"], r["context"]) for r in result["levels"]] == [
        (lv, gen.priors[str(lv)].config.context) for lv in gen.levels]
    assert [r["batch"] for r in result["whole"]] == [1]
    assert f"model {saved_music}" in capsys.readouterr().out


def test_music_benchmark_times_the_unguided_hierarchy_beside(saved_music, capsys):
    """``--unguided``: each batch also with the plain sampler (no guidance, one draft), in the same run."""
    result = music_generation.main(["--model", str(saved_music), "--seconds", "0.02", "--batches", "1",
                                    "--threads", "1", "--skip-levels", "--unguided"])
    row = result["whole"][0]
    assert row["unguided_wall"] > 0 and set(row) >= {"unguided_level1", "unguided_level0"}
    out = capsys.readouterr().out
    assert "own settings / plain" in out and "guidance 0, 0" in out and "drafts 1, 1" in out
