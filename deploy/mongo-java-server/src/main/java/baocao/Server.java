package baocao;

import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.IdFirstH2Backend;
import de.bwaldvogel.mongo.wire.MongoDatabaseHandler;
import de.bwaldvogel.mongo.wire.MongoExceptionHandler;
import de.bwaldvogel.mongo.wire.MongoWireMessageEncoder;
import de.bwaldvogel.mongo.wire.MongoWireProtocolHandler;
import de.bwaldvogel.mongo.wire.MongoWireReplyEncoder;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;

/**
 * Serves the MongoDB wire protocol on host:port, storing data in one H2 MVStore file, to clients
 * that log in with SCRAM-SHA-256 as one of the users in USERS (ScramUsers; AuthenticationHandler
 * refuses every other request). mongo-java-server has no authentication of its own, so the
 * channel pipeline is MongoServer#bind's with the authentication handler before the database.
 * Usage: java -cp ... baocao.Server HOST PORT FILE USERS
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
        if (args.length != 4) {
            System.err.println("usage: baocao.Server HOST PORT FILE USERS");
            System.exit(2);
        }
        ScramUsers users;
        try {
            users = ScramUsers.load(Path.of(args[3]));
        } catch (java.io.IOException e) {
            System.err.println("baocao.Server: cannot read the users file: " + e.getMessage());
            System.exit(2);
            return;
        }
        MongoBackend backend = new IdFirstH2Backend(args[2], Integer.getInteger("baocao.cacheMb", 256)).version(ANNOUNCED);
        EventLoopGroup boss = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        EventLoopGroup workers = new MultiThreadIoEventLoopGroup(NioIoHandler.newFactory());
        ChannelGroup clients = new DefaultChannelGroup("mongodb-channels", workers.next());
        Channel listener = new ServerBootstrap()
            .group(boss, workers)
            .channel(NioServerSocketChannel.class)
            .option(ChannelOption.SO_BACKLOG, 100)
            .localAddress(new InetSocketAddress(args[0], Integer.parseInt(args[1])))
            .childOption(ChannelOption.TCP_NODELAY, Boolean.TRUE)
            .childHandler(new ChannelInitializer<SocketChannel>() {
                @Override
                public void initChannel(SocketChannel ch) {
                    ch.pipeline().addLast(new MongoWireReplyEncoder());
                    ch.pipeline().addLast(new MongoWireMessageEncoder());
                    ch.pipeline().addLast(new MongoWireProtocolHandler());
                    ch.pipeline().addLast(new AuthenticationHandler(users));
                    ch.pipeline().addLast(new MongoDatabaseHandler(backend, clients));
                    ch.pipeline().addLast(new MongoExceptionHandler());
                }
            })
            .bind().syncUninterruptibly().channel();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            listener.close().syncUninterruptibly();
            clients.close().syncUninterruptibly();
            boss.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
            workers.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
            backend.close();
        }));
        System.out.println("mongo-java-server listening on " + args[0] + ":" + args[1] + " (SCRAM-SHA-256, "
            + users.size() + " user(s))");
        Thread.currentThread().join();
    }
}
