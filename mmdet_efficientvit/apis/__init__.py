"""Detectors on single images and their pictures: ``inference`` (what ``tools/demo.py`` runs and draws)
and ``webui`` (the demo page in the browser, built on it; needs ``pip install gradio``).

Nothing is imported here, so that ``import mmdet_efficientvit`` stays free of DetInferencer and Gradio.
"""
