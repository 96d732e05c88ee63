"""``python -m speechbrain_tdy.gallery``: kept for scripts; the command is ``speechbrain-tdy gallery``."""
from speechbrain_tdy.cli.gallery import main

if __name__ == "__main__":
    main()
