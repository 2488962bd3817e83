"""A QAT run says it is one: its training curve's title, and which weights it keeps and why."""

from PIL import Image

from mobile_sr import runs
from mobile_sr.training.plans import QATPlan


def test_training_curve_of_a_qat_run_is_titled_qat(tiny_sr):
    qat_title = Image.open(tiny_sr.qat_run / runs.CURVE_FILE).text["Title"]
    float_title = Image.open(tiny_sr.float_run / runs.CURVE_FILE).text["Title"]
    assert qat_title.startswith(float_title.split(" on ")[0] + " QAT on ") and "QAT" not in float_title


def test_keeping_the_best_qat_weights_tells_the_scores_apart(tmp_path):
    plan = QATPlan(None, tmp_path, "psnr_y")
    plan.best_step, plan.best_score = 4, 30.1236
    lines = []
    kept, choice = plan.keep_weights(None, step=6, last_score=30.1231, log=lines.append)
    assert kept == 30.1236 and choice["kept_step"] == 4
    assert lines == ["keeping the weights of step 4 (validation 30.1236 dB) over the last step's (30.1231 dB), "
                     "0.0005 dB better"]
