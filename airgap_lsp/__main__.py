import sys

from airgap_lsp.cli import main

sys.exit(main())
