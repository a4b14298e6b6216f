import sys

from dfkd.cli.main import main

sys.exit(main())
