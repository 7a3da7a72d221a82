//! Accepting connections and running their commands: each connection reads one OP_MSG at a time and
//! answers it (unless the client set moreToCome). Any other opcode (legacy OP_QUERY, OP_COMPRESSED —
//! never sent by the 3.x driver, and compression is never offered) closes the connection with a log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::commands::{self, Session, Shared};
use crate::wire::{self, HEADER_LEN, Header, OP_MSG};

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    let connection_ids = AtomicI32::new(0);
    loop {
        let (stream, peer) = listener.accept().await?;
        let id = connection_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(err) = connection(stream, shared, id).await {
                eprintln!("mongo-standin: connection {id} from {peer} closed: {err}");
            }
        });
    }
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>, id: i32) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|err| err.to_string())?;
    let mut session = Session::new(id);
    let mut reply_ids = 0i32;
    loop {
        let mut header = [0u8; HEADER_LEN];
        match stream.read_exact(&mut header).await {
            Ok(_) => {}
            // The client hung up between messages: the normal end of a connection.
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => return Err(err.to_string()),
        }
        let header = Header::parse(&header)?;
        let mut payload = vec![0u8; header.length - HEADER_LEN];
        stream
            .read_exact(&mut payload)
            .await
            .map_err(|err| err.to_string())?;
        if header.op_code != OP_MSG {
            return Err(format!(
                "opcode {} is not supported (the stand-in speaks OP_MSG only, as the mongodb 3.x driver does)",
                header.op_code
            ));
        }
        let request = wire::parse_op_msg(&payload)?;
        let reply = commands::run(&shared, &mut session, &request.body);
        if request.more_to_come() {
            continue;
        }
        reply_ids = reply_ids.wrapping_add(1);
        let message = wire::encode_op_msg(reply_ids, header.request_id, 0, &reply)?;
        stream
            .write_all(&message)
            .await
            .map_err(|err| err.to_string())?;
    }
}
