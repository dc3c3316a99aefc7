from neuromirror.cli import main

raise SystemExit(main())
