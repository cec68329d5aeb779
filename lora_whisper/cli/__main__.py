import sys

from lora_whisper.cli import main

sys.exit(main())
