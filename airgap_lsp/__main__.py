import sys

from airgap_lsp.cli import main

if __name__ == "__main__":
    sys.exit(main())
