"""``python -m speechbrain_tdy.embed``: kept for scripts; the command is ``speechbrain-tdy embed``."""
from speechbrain_tdy.cli.embed import main

if __name__ == "__main__":
    main()
