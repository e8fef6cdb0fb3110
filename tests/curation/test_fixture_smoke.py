def test_record_sim_smoke(tmp_path, sim_store, block):
    store = sim_store(tmp_path / "s.zarr", [block(style="careful", count=2), block(style="side", count=2, seed=10)])
    assert len(store) == 4
    ops = sorted(r["operator"] for r in store.catalog.rows())
    assert ops == ["careful", "careful", "side", "side"]
    assert all(r["success"] for r in store.catalog.rows())
