"""``python -m speechbrain_tdy.cli SUBCOMMAND ...``: the ``speechbrain-tdy`` command."""
from speechbrain_tdy.cli import main

main()
