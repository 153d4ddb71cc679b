from joygen.cli import main

raise SystemExit(main())
