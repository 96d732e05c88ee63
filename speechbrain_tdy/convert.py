"""``python -m speechbrain_tdy.convert``: kept for scripts; the command is ``speechbrain-tdy convert``."""
from speechbrain_tdy.cli.convert import main

if __name__ == "__main__":
    main()
