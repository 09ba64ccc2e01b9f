package baocao;

import java.util.List;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.IdFirstH2Backend;

/**
 * Serves the MongoDB wire protocol on host:port, storing data in one H2 MVStore file.
 * Usage: java -cp ... baocao.Server HOST PORT FILE
 * Stops cleanly on SIGTERM (the shutdown hook closes the store, which flushes it).
 */
public final class Server {
    private Server() {}

    /**
     * PyMongo 4.x refuses servers that announce a wire version below 9 (MongoDB 4.4), and
     * mongo-java-server 1.47's MONGO_5_0 constant announces 8. We announce 5.0 / wire 13; the
     * commands baocao uses (OP_MSG CRUD, bulk writes, indexes) are the same in both.
     */
    private static final MongoVersion ANNOUNCED = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(5, 0, 0);
        }

        @Override
        public int getWireVersion() {
            return 13;
        }
    };

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: baocao.Server HOST PORT FILE");
            System.exit(2);
        }
        MongoServer server = new MongoServer(new IdFirstH2Backend(args[2], Integer.getInteger("baocao.cacheMb", 256)).version(ANNOUNCED));
        server.bind(args[0], Integer.parseInt(args[1]));
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdown));
        System.out.println("mongo-java-server listening on " + args[0] + ":" + args[1]);
        Thread.currentThread().join();
    }
}
