"""Fanchuan on the memorising GRU4Rec fixture of ``tests/test_approximate.py``: forget Hit@10
before and after, by ``fanchuan_batch_size`` and ``fanchuan_rounds``.

The fixture's forget set has 157 interactions, so at the default batch (256) a round is a single
contrastive step; a leaderboard forget set (7,070 on Video Games) gives 28 steps a round. This
shows what the number of steps does on the fixture (Retrain's forget Hit@10 there: 0.038).

    python benchmarks/fanchuan_fixture_steps.py
"""
import copy
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from conftest import MEMORISING_GRU4REC, tiny_dict, trained_original  # noqa: E402
from recbole_unlearn.config import UnlearnConfig  # noqa: E402
from recbole_unlearn.trainer.approximate import APPROXIMATE  # noqa: E402

VARIANTS = [{}, {"fanchuan_batch_size": 64}, {"fanchuan_batch_size": 32}, {"fanchuan_batch_size": 16},
            {"fanchuan_rounds": 3}]


def main():
    _, dataset, forget_set, trained = trained_original("GRU4Rec", "scif", **MEMORISING_GRU4REC)
    keep = forget_set.keep_mask(dataset)
    for variant in VARIANTS:
        fanchuan = UnlearnConfig("GRU4Rec", config_dict=tiny_dict(
            unlearn_method="fanchuan", **MEMORISING_GRU4REC, **variant)).for_method("fanchuan")
        report = APPROXIMATE.get("fanchuan")().run(fanchuan, copy.deepcopy(trained), dataset, forget_set, keep, keep)
        print(f"{variant or 'defaults'}: forget Hit@10 {report.forget_hit(0)} -> "
              f"{report.forget_hit(report.kept_epoch)} ({report.epochs_run} rounds)", flush=True)


if __name__ == "__main__":
    main()
