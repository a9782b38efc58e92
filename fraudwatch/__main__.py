from fraudwatch.cli import main

raise SystemExit(main())
