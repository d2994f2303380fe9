"""Help → Quick start: what to do first and what to watch, in one page (non-modal)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

QUICK_START_HTML = """
<h3>Quick start</h3>
<ol>
<li><b>Press Start</b> (Ctrl+R). The default trains a β-VAE (β = 4, 10 latent dimensions) on dSprites: white
shapes whose shape, scale, orientation and position are known.</li>
<li><b>Watch the Training tab.</b> The loss falls; <i>recon</i> (how badly images are reconstructed) and
<i>kl</i> (how much information the code carries) trade against each other. The <b>KL per latent dimension</b>
bars show which dimensions are used: blue ones carry information, grey ones collapsed to the prior.
With β = 4 only a handful stay blue — one per factor, if the model disentangles.</li>
<li><b>Move β while it trains</b> (“Change while training”). Raise it and watch the KL bars shrink and the
reconstructions blur; lower it and detail returns. That is the β trade-off: reconstruction against a simple,
factorised code.</li>
<li><b>Open the Traversal tab.</b> Each row changes one latent dimension (largest KL first) and decodes. A row that
moves only the x position, or only the scale, has found that factor; a row that changes nothing is an unused
dimension. Click a thumbnail to start from another image.</li>
<li><b>Latent map</b> colours the codes by label or factor; <b>Evaluation</b> computes −ELBO and the
disentanglement scores, with the mutual-information heatmap (which latent carries which factor).</li>
</ol>
<p>File → Open checkpoint explores a trained model; Ctrl+E exports the current tab's figure.
Every hyperparameter's tooltip gives the formula it enters. More: docs/app.md and docs/panels.md.</p>
"""


def show_quick_start(parent: QWidget) -> QDialog:
    """Open the quick start beside the window (non-modal: the app keeps working)."""
    dialog = QDialog(parent)
    dialog.setObjectName("quickStart")
    dialog.setWindowTitle("Quick start")
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    layout = QVBoxLayout(dialog)
    text = QTextBrowser()
    text.setHtml(QUICK_START_HTML)
    text.setOpenExternalLinks(False)
    layout.addWidget(text)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.close)
    layout.addWidget(buttons)
    dialog.resize(560, 520)
    dialog.setModal(False)
    dialog.show()
    return dialog
