"""``python -m speechbrain_tdy.export``: kept for scripts; the command is ``speechbrain-tdy export``."""
from speechbrain_tdy.cli.export import main

main()
