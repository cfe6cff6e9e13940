import sys

from comfy_serverless_client.cli import main

sys.exit(main())
