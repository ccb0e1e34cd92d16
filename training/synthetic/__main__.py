"""`python -m training.synthetic`: the procedural generator's CLI."""

import sys

from training.synthetic.procedural import main

sys.exit(main())
