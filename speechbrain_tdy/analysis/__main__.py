"""``python -m speechbrain_tdy.analysis``: kept for scripts; the command is ``speechbrain-tdy analysis``."""
from speechbrain_tdy.cli.analysis import main

main()
