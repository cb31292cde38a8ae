from rsapp.cli import main

raise SystemExit(main())
