"""``python -m mmdet_efficientvit COMMAND ...``: the ``mmdet-efficientvit`` command."""
from .commands import main

main()
